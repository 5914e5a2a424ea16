from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliberationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIBERATION_STATUS_UNKNOWN: _ClassVar[DeliberationStatus]
    DELIBERATION_STATUS_PENDING: _ClassVar[DeliberationStatus]
    DELIBERATION_STATUS_IN_PROGRESS: _ClassVar[DeliberationStatus]
    DELIBERATION_STATUS_COMPLETED: _ClassVar[DeliberationStatus]
    DELIBERATION_STATUS_FAILED: _ClassVar[DeliberationStatus]
    DELIBERATION_STATUS_TIMEOUT: _ClassVar[DeliberationStatus]
    DELIBERATION_STATUS_CANCELLED: _ClassVar[DeliberationStatus]

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_ROUNDS_DONE: _ClassVar[StopReason]
    STOP_REASON_EVIDENCE_DECIDED: _ClassVar[StopReason]
    STOP_REASON_TOKEN_BUDGET: _ClassVar[StopReason]
DELIBERATION_STATUS_UNKNOWN: DeliberationStatus
DELIBERATION_STATUS_PENDING: DeliberationStatus
DELIBERATION_STATUS_IN_PROGRESS: DeliberationStatus
DELIBERATION_STATUS_COMPLETED: DeliberationStatus
DELIBERATION_STATUS_FAILED: DeliberationStatus
DELIBERATION_STATUS_TIMEOUT: DeliberationStatus
DELIBERATION_STATUS_CANCELLED: DeliberationStatus
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_ROUNDS_DONE: StopReason
STOP_REASON_EVIDENCE_DECIDED: StopReason
STOP_REASON_TOKEN_BUDGET: StopReason

class DeliberateRequest(_message.Message):
    __slots__ = ("task_id", "task_description", "role", "constraints", "rounds", "num_agents", "samples_per_agent")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    NUM_AGENTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_AGENT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_description: str
    role: str
    constraints: TaskConstraints
    rounds: int
    num_agents: int
    samples_per_agent: int
    def __init__(self, task_id: _Optional[str] = ..., task_description: _Optional[str] = ..., role: _Optional[str] = ..., constraints: _Optional[_Union[TaskConstraints, _Mapping]] = ..., rounds: _Optional[int] = ..., num_agents: _Optional[int] = ..., samples_per_agent: _Optional[int] = ...) -> None: ...

class DeliberateResponse(_message.Message):
    __slots__ = ("task_id", "results", "winner_id", "duration_ms", "metadata", "status", "failed_agents", "usage", "error_message", "rounds_run", "stop_reason", "token_budget", "tokens_spent", "stop_code")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AGENTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_RUN_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SPENT_FIELD_NUMBER: _ClassVar[int]
    STOP_CODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    results: _containers.RepeatedCompositeFieldContainer[DeliberationResult]
    winner_id: str
    duration_ms: int
    metadata: OrchestratorMetadata
    status: DeliberationStatus
    failed_agents: _containers.RepeatedCompositeFieldContainer[AgentFailure]
    usage: TokenUsage
    error_message: str
    rounds_run: int
    stop_reason: str
    token_budget: int
    tokens_spent: int
    stop_code: StopReason
    def __init__(self, task_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[DeliberationResult, _Mapping]]] = ..., winner_id: _Optional[str] = ..., duration_ms: _Optional[int] = ..., metadata: _Optional[_Union[OrchestratorMetadata, _Mapping]] = ..., status: _Optional[_Union[DeliberationStatus, str]] = ..., failed_agents: _Optional[_Iterable[_Union[AgentFailure, _Mapping]]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., error_message: _Optional[str] = ..., rounds_run: _Optional[int] = ..., stop_reason: _Optional[str] = ..., token_budget: _Optional[int] = ..., tokens_spent: _Optional[int] = ..., stop_code: _Optional[_Union[StopReason, str]] = ...) -> None: ...

class GetDeliberationResultRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetDeliberationResultResponse(_message.Message):
    __slots__ = ("task_id", "status", "results", "winner_id", "duration_ms", "error_message", "metadata", "role", "current_stage", "current_round", "rounds", "failed_agents", "usage", "calls", "created_at_ms", "task_description", "task_metadata", "source", "rounds_run", "stop_reason", "acceptance_tests", "token_budget", "tokens_spent", "stop_code")
    class TaskMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AGENTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TASK_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TASK_METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_RUN_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_TESTS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SPENT_FIELD_NUMBER: _ClassVar[int]
    STOP_CODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: DeliberationStatus
    results: _containers.RepeatedCompositeFieldContainer[DeliberationResult]
    winner_id: str
    duration_ms: int
    error_message: str
    metadata: OrchestratorMetadata
    role: str
    current_stage: str
    current_round: int
    rounds: int
    failed_agents: _containers.RepeatedCompositeFieldContainer[AgentFailure]
    usage: TokenUsage
    calls: _containers.RepeatedCompositeFieldContainer[CallRecord]
    created_at_ms: int
    task_description: str
    task_metadata: _containers.ScalarMap[str, str]
    source: str
    rounds_run: int
    stop_reason: str
    acceptance_tests: str
    token_budget: int
    tokens_spent: int
    stop_code: StopReason
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[DeliberationStatus, str]] = ..., results: _Optional[_Iterable[_Union[DeliberationResult, _Mapping]]] = ..., winner_id: _Optional[str] = ..., duration_ms: _Optional[int] = ..., error_message: _Optional[str] = ..., metadata: _Optional[_Union[OrchestratorMetadata, _Mapping]] = ..., role: _Optional[str] = ..., current_stage: _Optional[str] = ..., current_round: _Optional[int] = ..., rounds: _Optional[int] = ..., failed_agents: _Optional[_Iterable[_Union[AgentFailure, _Mapping]]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., calls: _Optional[_Iterable[_Union[CallRecord, _Mapping]]] = ..., created_at_ms: _Optional[int] = ..., task_description: _Optional[str] = ..., task_metadata: _Optional[_Mapping[str, str]] = ..., source: _Optional[str] = ..., rounds_run: _Optional[int] = ..., stop_reason: _Optional[str] = ..., acceptance_tests: _Optional[str] = ..., token_budget: _Optional[int] = ..., tokens_spent: _Optional[int] = ..., stop_code: _Optional[_Union[StopReason, str]] = ...) -> None: ...

class TaskConstraints(_message.Message):
    __slots__ = ("rubric", "requirements", "metadata", "max_iterations", "timeout_seconds", "acceptance_tests", "token_budget")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_TESTS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    rubric: str
    requirements: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    max_iterations: int
    timeout_seconds: int
    acceptance_tests: str
    token_budget: int
    def __init__(self, rubric: _Optional[str] = ..., requirements: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., max_iterations: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., acceptance_tests: _Optional[str] = ..., token_budget: _Optional[int] = ...) -> None: ...

class DeliberationResult(_message.Message):
    __slots__ = ("proposal", "checks", "score", "rank", "peer_score", "check_score", "peer_scores", "critiques", "usage", "rank_reason", "evidence")
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    PEER_SCORE_FIELD_NUMBER: _ClassVar[int]
    CHECK_SCORE_FIELD_NUMBER: _ClassVar[int]
    PEER_SCORES_FIELD_NUMBER: _ClassVar[int]
    CRITIQUES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    RANK_REASON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    proposal: Proposal
    checks: CheckSuite
    score: float
    rank: int
    peer_score: float
    check_score: float
    peer_scores: _containers.RepeatedCompositeFieldContainer[PeerScore]
    critiques: _containers.RepeatedCompositeFieldContainer[Critique]
    usage: TokenUsage
    rank_reason: str
    evidence: ProposalEvidence
    def __init__(self, proposal: _Optional[_Union[Proposal, _Mapping]] = ..., checks: _Optional[_Union[CheckSuite, _Mapping]] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., peer_score: _Optional[float] = ..., check_score: _Optional[float] = ..., peer_scores: _Optional[_Iterable[_Union[PeerScore, _Mapping]]] = ..., critiques: _Optional[_Iterable[_Union[Critique, _Mapping]]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., rank_reason: _Optional[str] = ..., evidence: _Optional[_Union[ProposalEvidence, _Mapping]] = ...) -> None: ...

class ProposalEvidence(_message.Message):
    __slots__ = ("round", "spec_passed", "spec_total", "agent_tests_passed", "agent_tests_total", "agreement", "group", "failures", "skipped", "behaviour_group", "split_by", "defines_task")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SPEC_PASSED_FIELD_NUMBER: _ClassVar[int]
    SPEC_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AGENT_TESTS_PASSED_FIELD_NUMBER: _ClassVar[int]
    AGENT_TESTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOUR_GROUP_FIELD_NUMBER: _ClassVar[int]
    SPLIT_BY_FIELD_NUMBER: _ClassVar[int]
    DEFINES_TASK_FIELD_NUMBER: _ClassVar[int]
    round: int
    spec_passed: int
    spec_total: int
    agent_tests_passed: int
    agent_tests_total: int
    agreement: int
    group: _containers.RepeatedScalarFieldContainer[str]
    failures: _containers.RepeatedScalarFieldContainer[str]
    skipped: str
    behaviour_group: _containers.RepeatedScalarFieldContainer[str]
    split_by: _containers.RepeatedScalarFieldContainer[str]
    defines_task: bool
    def __init__(self, round: _Optional[int] = ..., spec_passed: _Optional[int] = ..., spec_total: _Optional[int] = ..., agent_tests_passed: _Optional[int] = ..., agent_tests_total: _Optional[int] = ..., agreement: _Optional[int] = ..., group: _Optional[_Iterable[str]] = ..., failures: _Optional[_Iterable[str]] = ..., skipped: _Optional[str] = ..., behaviour_group: _Optional[_Iterable[str]] = ..., split_by: _Optional[_Iterable[str]] = ..., defines_task: _Optional[bool] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("author_id", "author_role", "content", "created_at_ms", "revisions")
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    author_id: str
    author_role: str
    content: str
    created_at_ms: int
    revisions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, author_id: _Optional[str] = ..., author_role: _Optional[str] = ..., content: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., revisions: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckSuite(_message.Message):
    __slots__ = ("policy", "lint", "dryrun", "additional_checks", "all_passed")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LINT_FIELD_NUMBER: _ClassVar[int]
    DRYRUN_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_CHECKS_FIELD_NUMBER: _ClassVar[int]
    ALL_PASSED_FIELD_NUMBER: _ClassVar[int]
    policy: PolicyResult
    lint: LintResult
    dryrun: DryRunResult
    additional_checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    all_passed: bool
    def __init__(self, policy: _Optional[_Union[PolicyResult, _Mapping]] = ..., lint: _Optional[_Union[LintResult, _Mapping]] = ..., dryrun: _Optional[_Union[DryRunResult, _Mapping]] = ..., additional_checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., all_passed: _Optional[bool] = ...) -> None: ...

class PolicyResult(_message.Message):
    __slots__ = ("passed", "violations", "message")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    violations: _containers.RepeatedScalarFieldContainer[str]
    message: str
    def __init__(self, passed: _Optional[bool] = ..., violations: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ...) -> None: ...

class LintResult(_message.Message):
    __slots__ = ("passed", "error_count", "warning_count", "errors")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    WARNING_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    error_count: int
    warning_count: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, passed: _Optional[bool] = ..., error_count: _Optional[int] = ..., warning_count: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class DryRunResult(_message.Message):
    __slots__ = ("passed", "output", "exit_code", "message")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    output: str
    exit_code: int
    message: str
    def __init__(self, passed: _Optional[bool] = ..., output: _Optional[str] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("check_type", "passed", "score", "message", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    check_type: str
    passed: bool
    score: float
    message: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, check_type: _Optional[str] = ..., passed: _Optional[bool] = ..., score: _Optional[float] = ..., message: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class OrchestratorMetadata(_message.Message):
    __slots__ = ("orchestrator_version", "timestamp_ms", "execution_id", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORCHESTRATOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    orchestrator_version: str
    timestamp_ms: int
    execution_id: str
    tags: _containers.ScalarMap[str, str]
    def __init__(self, orchestrator_version: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., execution_id: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeliberationUpdate(_message.Message):
    __slots__ = ("status", "progress_percent", "current_step", "current_agent", "partial_result", "task_id", "stage", "round", "status_code", "results", "winner_id", "error_message", "timestamp_ms", "rounds_run", "stop_reason", "token_budget", "tokens_spent", "stop_code")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    CURRENT_AGENT_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_RUN_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SPENT_FIELD_NUMBER: _ClassVar[int]
    STOP_CODE_FIELD_NUMBER: _ClassVar[int]
    status: str
    progress_percent: int
    current_step: str
    current_agent: str
    partial_result: DeliberationResult
    task_id: str
    stage: str
    round: int
    status_code: DeliberationStatus
    results: _containers.RepeatedCompositeFieldContainer[DeliberationResult]
    winner_id: str
    error_message: str
    timestamp_ms: int
    rounds_run: int
    stop_reason: str
    token_budget: int
    tokens_spent: int
    stop_code: StopReason
    def __init__(self, status: _Optional[str] = ..., progress_percent: _Optional[int] = ..., current_step: _Optional[str] = ..., current_agent: _Optional[str] = ..., partial_result: _Optional[_Union[DeliberationResult, _Mapping]] = ..., task_id: _Optional[str] = ..., stage: _Optional[str] = ..., round: _Optional[int] = ..., status_code: _Optional[_Union[DeliberationStatus, str]] = ..., results: _Optional[_Iterable[_Union[DeliberationResult, _Mapping]]] = ..., winner_id: _Optional[str] = ..., error_message: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., rounds_run: _Optional[int] = ..., stop_reason: _Optional[str] = ..., token_budget: _Optional[int] = ..., tokens_spent: _Optional[int] = ..., stop_code: _Optional[_Union[StopReason, str]] = ...) -> None: ...

class CreateCouncilRequest(_message.Message):
    __slots__ = ("role", "num_agents", "config")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NUM_AGENTS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    role: str
    num_agents: int
    config: CouncilConfig
    def __init__(self, role: _Optional[str] = ..., num_agents: _Optional[int] = ..., config: _Optional[_Union[CouncilConfig, _Mapping]] = ...) -> None: ...

class CreateCouncilResponse(_message.Message):
    __slots__ = ("council_id", "agents_created", "agent_ids")
    COUNCIL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENTS_CREATED_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    council_id: str
    agents_created: int
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, council_id: _Optional[str] = ..., agents_created: _Optional[int] = ..., agent_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CouncilConfig(_message.Message):
    __slots__ = ("deliberation_rounds", "enable_peer_review", "model_profile", "custom_params", "agent_type", "token_budget")
    class CustomParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DELIBERATION_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_PEER_REVIEW_FIELD_NUMBER: _ClassVar[int]
    MODEL_PROFILE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PARAMS_FIELD_NUMBER: _ClassVar[int]
    AGENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    deliberation_rounds: int
    enable_peer_review: bool
    model_profile: str
    custom_params: _containers.ScalarMap[str, str]
    agent_type: str
    token_budget: int
    def __init__(self, deliberation_rounds: _Optional[int] = ..., enable_peer_review: _Optional[bool] = ..., model_profile: _Optional[str] = ..., custom_params: _Optional[_Mapping[str, str]] = ..., agent_type: _Optional[str] = ..., token_budget: _Optional[int] = ...) -> None: ...

class ListCouncilsRequest(_message.Message):
    __slots__ = ("role_filter", "include_agents", "page_size", "page_token")
    ROLE_FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_AGENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    role_filter: str
    include_agents: bool
    page_size: int
    page_token: str
    def __init__(self, role_filter: _Optional[str] = ..., include_agents: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCouncilsResponse(_message.Message):
    __slots__ = ("councils", "next_page_token")
    COUNCILS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    councils: _containers.RepeatedCompositeFieldContainer[CouncilInfo]
    next_page_token: str
    def __init__(self, councils: _Optional[_Iterable[_Union[CouncilInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CouncilInfo(_message.Message):
    __slots__ = ("council_id", "role", "num_agents", "agents", "status", "model", "deliberation_rounds", "created_at_ms", "token_budget")
    COUNCIL_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NUM_AGENTS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DELIBERATION_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    council_id: str
    role: str
    num_agents: int
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    status: str
    model: str
    deliberation_rounds: int
    created_at_ms: int
    token_budget: int
    def __init__(self, council_id: _Optional[str] = ..., role: _Optional[str] = ..., num_agents: _Optional[int] = ..., agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ..., status: _Optional[str] = ..., model: _Optional[str] = ..., deliberation_rounds: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., token_budget: _Optional[int] = ...) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("agent_id", "role", "status", "capabilities", "temperature", "seed")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    role: str
    status: str
    capabilities: AgentCapabilities
    temperature: float
    seed: int
    def __init__(self, agent_id: _Optional[str] = ..., role: _Optional[str] = ..., status: _Optional[str] = ..., capabilities: _Optional[_Union[AgentCapabilities, _Mapping]] = ..., temperature: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class AgentCapabilities(_message.Message):
    __slots__ = ("supported_tasks", "model_profile", "max_concurrent_tasks", "languages")
    SUPPORTED_TASKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_PROFILE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_TASKS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    supported_tasks: _containers.RepeatedScalarFieldContainer[str]
    model_profile: str
    max_concurrent_tasks: int
    languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, supported_tasks: _Optional[_Iterable[str]] = ..., model_profile: _Optional[str] = ..., max_concurrent_tasks: _Optional[int] = ..., languages: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteCouncilRequest(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: str
    def __init__(self, role: _Optional[str] = ...) -> None: ...

class DeleteCouncilResponse(_message.Message):
    __slots__ = ("success", "message", "agents_removed")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AGENTS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    agents_removed: int
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., agents_removed: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("include_stats",)
    INCLUDE_STATS_FIELD_NUMBER: _ClassVar[int]
    include_stats: bool
    def __init__(self, include_stats: _Optional[bool] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("status", "uptime_seconds", "stats", "version", "deliberations_by_status", "queue_depth", "running_deliberations", "ray", "llm_status", "sandbox_status", "warnings")
    class DeliberationsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DELIBERATIONS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_DELIBERATIONS_FIELD_NUMBER: _ClassVar[int]
    RAY_FIELD_NUMBER: _ClassVar[int]
    LLM_STATUS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_STATUS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    status: str
    uptime_seconds: int
    stats: OrchestratorStats
    version: str
    deliberations_by_status: _containers.ScalarMap[str, int]
    queue_depth: int
    running_deliberations: int
    ray: RayClusterSummary
    llm_status: str
    sandbox_status: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[str] = ..., uptime_seconds: _Optional[int] = ..., stats: _Optional[_Union[OrchestratorStats, _Mapping]] = ..., version: _Optional[str] = ..., deliberations_by_status: _Optional[_Mapping[str, int]] = ..., queue_depth: _Optional[int] = ..., running_deliberations: _Optional[int] = ..., ray: _Optional[_Union[RayClusterSummary, _Mapping]] = ..., llm_status: _Optional[str] = ..., sandbox_status: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class OrchestratorStats(_message.Message):
    __slots__ = ("total_deliberations", "total_orchestrations", "avg_deliberation_time_ms", "active_councils", "role_counts")
    class RoleCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_DELIBERATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ORCHESTRATIONS_FIELD_NUMBER: _ClassVar[int]
    AVG_DELIBERATION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_COUNCILS_FIELD_NUMBER: _ClassVar[int]
    ROLE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    total_deliberations: int
    total_orchestrations: int
    avg_deliberation_time_ms: float
    active_councils: int
    role_counts: _containers.ScalarMap[str, int]
    def __init__(self, total_deliberations: _Optional[int] = ..., total_orchestrations: _Optional[int] = ..., avg_deliberation_time_ms: _Optional[float] = ..., active_councils: _Optional[int] = ..., role_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class AgentFailure(_message.Message):
    __slots__ = ("agent_id", "stage", "round", "error")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    stage: str
    round: int
    error: str
    def __init__(self, agent_id: _Optional[str] = ..., stage: _Optional[str] = ..., round: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class Critique(_message.Message):
    __slots__ = ("critic_id", "target_id", "round", "text")
    CRITIC_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    critic_id: str
    target_id: str
    round: int
    text: str
    def __init__(self, critic_id: _Optional[str] = ..., target_id: _Optional[str] = ..., round: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class PeerScore(_message.Message):
    __slots__ = ("scorer_id", "target_id", "score", "rationale")
    SCORER_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    scorer_id: str
    target_id: str
    score: float
    rationale: str
    def __init__(self, scorer_id: _Optional[str] = ..., target_id: _Optional[str] = ..., score: _Optional[float] = ..., rationale: _Optional[str] = ...) -> None: ...

class CallRecord(_message.Message):
    __slots__ = ("agent_id", "stage", "round", "prompt_tokens", "completion_tokens", "latency_ms", "model", "temperature", "seed", "ok", "error")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    stage: str
    round: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    model: str
    temperature: float
    seed: int
    ok: bool
    error: str
    def __init__(self, agent_id: _Optional[str] = ..., stage: _Optional[str] = ..., round: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., latency_ms: _Optional[float] = ..., model: _Optional[str] = ..., temperature: _Optional[float] = ..., seed: _Optional[int] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class RayClusterSummary(_message.Message):
    __slots__ = ("connected", "nodes", "cpus", "actors_alive", "actors_restarting", "actors_dead", "address", "nodes_dead", "actor_restarts", "node_list")
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    ACTORS_ALIVE_FIELD_NUMBER: _ClassVar[int]
    ACTORS_RESTARTING_FIELD_NUMBER: _ClassVar[int]
    ACTORS_DEAD_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODES_DEAD_FIELD_NUMBER: _ClassVar[int]
    ACTOR_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    NODE_LIST_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    nodes: int
    cpus: float
    actors_alive: int
    actors_restarting: int
    actors_dead: int
    address: str
    nodes_dead: int
    actor_restarts: int
    node_list: _containers.RepeatedCompositeFieldContainer[RayNodeSummary]
    def __init__(self, connected: _Optional[bool] = ..., nodes: _Optional[int] = ..., cpus: _Optional[float] = ..., actors_alive: _Optional[int] = ..., actors_restarting: _Optional[int] = ..., actors_dead: _Optional[int] = ..., address: _Optional[str] = ..., nodes_dead: _Optional[int] = ..., actor_restarts: _Optional[int] = ..., node_list: _Optional[_Iterable[_Union[RayNodeSummary, _Mapping]]] = ...) -> None: ...

class RayNodeSummary(_message.Message):
    __slots__ = ("node_id", "address", "alive", "head", "cpus", "labels", "agents_alive", "agents_restarting", "calls_in_flight", "death_reason")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_ALIVE_FIELD_NUMBER: _ClassVar[int]
    AGENTS_RESTARTING_FIELD_NUMBER: _ClassVar[int]
    CALLS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEATH_REASON_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    alive: bool
    head: bool
    cpus: float
    labels: _containers.ScalarMap[str, str]
    agents_alive: int
    agents_restarting: int
    calls_in_flight: int
    death_reason: str
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., alive: _Optional[bool] = ..., head: _Optional[bool] = ..., cpus: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., agents_alive: _Optional[int] = ..., agents_restarting: _Optional[int] = ..., calls_in_flight: _Optional[int] = ..., death_reason: _Optional[str] = ...) -> None: ...

class SubmitDeliberationResponse(_message.Message):
    __slots__ = ("task_id", "status", "existing")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: DeliberationStatus
    existing: bool
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[DeliberationStatus, str]] = ..., existing: _Optional[bool] = ...) -> None: ...

class WatchDeliberationRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class CancelDeliberationRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class CancelDeliberationResponse(_message.Message):
    __slots__ = ("task_id", "status", "cancelled", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: DeliberationStatus
    cancelled: bool
    message: str
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[DeliberationStatus, str]] = ..., cancelled: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class ListDeliberationsRequest(_message.Message):
    __slots__ = ("status_filter", "role_filter", "page_size", "page_token")
    STATUS_FILTER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status_filter: DeliberationStatus
    role_filter: str
    page_size: int
    page_token: str
    def __init__(self, status_filter: _Optional[_Union[DeliberationStatus, str]] = ..., role_filter: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class DeliberationSummary(_message.Message):
    __slots__ = ("task_id", "role", "status", "current_stage", "current_round", "rounds", "agents_total", "agents_failed", "winner_id", "created_at_ms", "duration_ms", "usage", "error_message", "token_budget", "stop_code")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    STOP_CODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    role: str
    status: DeliberationStatus
    current_stage: str
    current_round: int
    rounds: int
    agents_total: int
    agents_failed: int
    winner_id: str
    created_at_ms: int
    duration_ms: int
    usage: TokenUsage
    error_message: str
    token_budget: int
    stop_code: StopReason
    def __init__(self, task_id: _Optional[str] = ..., role: _Optional[str] = ..., status: _Optional[_Union[DeliberationStatus, str]] = ..., current_stage: _Optional[str] = ..., current_round: _Optional[int] = ..., rounds: _Optional[int] = ..., agents_total: _Optional[int] = ..., agents_failed: _Optional[int] = ..., winner_id: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., duration_ms: _Optional[int] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., error_message: _Optional[str] = ..., token_budget: _Optional[int] = ..., stop_code: _Optional[_Union[StopReason, str]] = ...) -> None: ...

class ListDeliberationsResponse(_message.Message):
    __slots__ = ("deliberations", "next_page_token")
    DELIBERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliberations: _containers.RepeatedCompositeFieldContainer[DeliberationSummary]
    next_page_token: str
    def __init__(self, deliberations: _Optional[_Iterable[_Union[DeliberationSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ("plan_id",)
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    def __init__(self, plan_id: _Optional[str] = ...) -> None: ...

class PlanSubtaskInfo(_message.Message):
    __slots__ = ("subtask_id", "role", "title", "depends_on", "deliberation_id", "state", "deliberation_status", "winner_id", "winner_score", "error", "duration_ms")
    SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    DELIBERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DELIBERATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    WINNER_SCORE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    subtask_id: str
    role: str
    title: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    deliberation_id: str
    state: str
    deliberation_status: DeliberationStatus
    winner_id: str
    winner_score: float
    error: str
    duration_ms: int
    def __init__(self, subtask_id: _Optional[str] = ..., role: _Optional[str] = ..., title: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., deliberation_id: _Optional[str] = ..., state: _Optional[str] = ..., deliberation_status: _Optional[_Union[DeliberationStatus, str]] = ..., winner_id: _Optional[str] = ..., winner_score: _Optional[float] = ..., error: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class GetPlanResponse(_message.Message):
    __slots__ = ("plan_id", "story_id", "title", "approved_by", "received_at_ms", "finished", "subtasks", "outcome", "cross_checks", "follow_up")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CROSS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    story_id: str
    title: str
    approved_by: str
    received_at_ms: int
    finished: bool
    subtasks: _containers.RepeatedCompositeFieldContainer[PlanSubtaskInfo]
    outcome: str
    cross_checks: _containers.RepeatedCompositeFieldContainer[PlanCrossCheck]
    follow_up: PlanFollowUp
    def __init__(self, plan_id: _Optional[str] = ..., story_id: _Optional[str] = ..., title: _Optional[str] = ..., approved_by: _Optional[str] = ..., received_at_ms: _Optional[int] = ..., finished: _Optional[bool] = ..., subtasks: _Optional[_Iterable[_Union[PlanSubtaskInfo, _Mapping]]] = ..., outcome: _Optional[str] = ..., cross_checks: _Optional[_Iterable[_Union[PlanCrossCheck, _Mapping]]] = ..., follow_up: _Optional[_Union[PlanFollowUp, _Mapping]] = ...) -> None: ...

class PlanCrossCheck(_message.Message):
    __slots__ = ("kind", "subtask_id", "target_subtask_id", "status", "passed", "total", "summary", "details", "chosen", "target_winner", "attempt")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    TARGET_WINNER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    subtask_id: str
    target_subtask_id: str
    status: str
    passed: int
    total: int
    summary: str
    details: _containers.RepeatedScalarFieldContainer[str]
    chosen: str
    target_winner: str
    attempt: int
    def __init__(self, kind: _Optional[str] = ..., subtask_id: _Optional[str] = ..., target_subtask_id: _Optional[str] = ..., status: _Optional[str] = ..., passed: _Optional[int] = ..., total: _Optional[int] = ..., summary: _Optional[str] = ..., details: _Optional[_Iterable[str]] = ..., chosen: _Optional[str] = ..., target_winner: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class PlanFollowUp(_message.Message):
    __slots__ = ("subtask_id", "deliberation_id", "state", "winner_id", "error", "acceptance_tests")
    SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    DELIBERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_TESTS_FIELD_NUMBER: _ClassVar[int]
    subtask_id: str
    deliberation_id: str
    state: str
    winner_id: str
    error: str
    acceptance_tests: str
    def __init__(self, subtask_id: _Optional[str] = ..., deliberation_id: _Optional[str] = ..., state: _Optional[str] = ..., winner_id: _Optional[str] = ..., error: _Optional[str] = ..., acceptance_tests: _Optional[str] = ...) -> None: ...
