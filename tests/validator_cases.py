"""The validator cases both tiers use: the unit tests (scripted sandbox) and the integration tests (real tools)."""

from __future__ import annotations

from orchestrator.domain.model import CheckResult, CheckSuite

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.local/web:1.4.2
          ports: [{containerPort: 8080}]
          resources: {limits: {cpu: 500m, memory: 256Mi}}
"""


def fenced(language: str, code: str) -> str:
    return f"The change:\n\n```{language}\n{code}```\n\n"


def additional(suite: CheckSuite, check_type: str) -> CheckResult:
    (found,) = [c for c in suite.additional if c.check_type == check_type]
    return found
