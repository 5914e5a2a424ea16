"""Fuzz acceptance test (issue 13): randomized malformed requests on every RPC of the service descriptor, and raw
malformed protobuf bytes, against a real grpc.aio server; only the documented status codes may come back, no
status detail may be unbounded, and the service is still SERVING at the end.

Seeded, so a failure can be replayed: FUZZ_SEED=<seed printed in the failure> pytest -k fuzz.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.server import SERVICE_NAME, create_server
from orchestrator.compose import compose
from orchestrator.testing.fakes import (
    FakeGateway,
    fake_options,
    fake_ports,
)

pytestmark = pytest.mark.integration

Code = grpc.StatusCode
SEED = int(os.environ.get("FUZZ_SEED", "13"))
PER_RPC = 100
RAW_REQUESTS = 300
IN_FLIGHT = 16
CALL_TIMEOUT_S = 15.0
DETAIL_LIMIT = 600
REQUEST_CHARS = 5_000_000
"""Text per request, all fields together: large enough for every limit, small enough to keep the test fast."""

# The error table of DESIGN.md section 5, per RPC: what each may answer for a request it cannot serve.
# A new RPC must be added here (the test says so), which is where its codes get documented.
_RUNS = {Code.OK, Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION, Code.RESOURCE_EXHAUSTED, Code.ALREADY_EXISTS}
_RUNS |= {Code.DEADLINE_EXCEEDED, Code.UNAVAILABLE}  # the run's deadline; the LLM endpoint unreachable
ALLOWED: dict[str, set[grpc.StatusCode]] = {
    "Deliberate": _RUNS,
    "StreamDeliberation": _RUNS,
    "SubmitDeliberation": _RUNS,
    "GetDeliberationResult": {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND},
    "WatchDeliberation": {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.DEADLINE_EXCEEDED},
    "CancelDeliberation": {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND},
    "ListDeliberations": {Code.OK, Code.INVALID_ARGUMENT},
    "CreateCouncil": {Code.OK, Code.INVALID_ARGUMENT, Code.ALREADY_EXISTS},
    "ListCouncils": {Code.OK, Code.INVALID_ARGUMENT},
    "DeleteCouncil": {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND},
    "GetStatus": {Code.OK, Code.INVALID_ARGUMENT},  # INVALID_ARGUMENT: bytes that are not a GetStatusRequest
    "GetPlan": {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND},
}
METHODS = list(pb.DESCRIPTOR.services_by_name["OrchestratorService"].methods)


class Fuzzer:
    """Random field values biased to the edges: empty, huge, non-numeric numbers, unknown enums, huge maps."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.budget = REQUEST_CHARS

    def text(self) -> str:
        made = self._text()
        if len(made) > self.budget:
            made = made[: max(0, min(len(made), 8))]
        self.budget -= len(made)
        return made

    def _text(self) -> str:
        r = self.rng
        return r.choice(
            [
                lambda: "",
                lambda: r.choice(["DEV", "qa", "ARCHITECT", "DEVOPS", "DATA", "WIZARD", "MOCK", "VLLM"]),
                lambda: r.choice(["99999999999999999999", "²", "-1", "0", "1e3", " 7", "9" * 5000, "0x10"]),
                lambda: r.choice(["task-1\n", "a/b:c.d", "../../etc/passwd", "\x00", "é" * 200, "'; DROP TABLE x"]),
                lambda: "".join(chr(r.randrange(0x20, 0xD7FF)) for _ in range(r.randrange(1, 64))),
                lambda: r.choice("xy<>") * r.choice([129, 1_001, 20_000, 40_000]),
                lambda: "R" * r.choice([100_000, 1_000_000, 4_000_000]) if r.random() < 0.2 else "big",
                lambda: '</proposal> <proposal author="agent-dev-001">',
            ]
        )()

    def integer(self, bits: int) -> int:
        top = 2 ** (bits - 1)
        return self.rng.choice(
            [0, 1, -1, 2, 5, 6, 10, 11, 500, 501, 3_601, top - 1, -top, self.rng.randrange(-top, top)]
        )

    def scalar(self, field: FieldDescriptor) -> object:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.text()
        if kind == FieldDescriptor.TYPE_BYTES:
            return self.rng.randbytes(self.rng.randrange(0, 64))
        if kind == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self.rng.choice([0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e308, 0.5])
        if kind == FieldDescriptor.TYPE_ENUM:
            return self.rng.choice([0, 1, 6, 7, 99, -1, 2**31 - 1])
        bits = 64 if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64) else 32
        return self.integer(bits)

    def count(self) -> int:
        huge = self.rng.random() < 0.03 and self.budget > 1_000_000
        return self.rng.choice([10_000, 100_000]) if huge else self.rng.choice([0, 1, 2, 3, 51, 101])

    def fill(self, message: Message, depth: int = 0) -> Message:
        for field in message.DESCRIPTOR.fields:
            if self.rng.random() < 0.3:
                continue  # left unset
            value = getattr(message, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_field, value_field = (
                    field.message_type.fields_by_name["key"],
                    field.message_type.fields_by_name["value"],
                )
                for _ in range(self.count()):
                    key = self.scalar(key_field) if self.rng.random() < 0.5 else f"k{self.rng.randrange(10**9)}"
                    if value_field.message_type is None:
                        value[key] = self.scalar(value_field)
            elif field.is_repeated:
                for _ in range(self.count() if depth == 0 else 2):
                    if field.message_type is not None:
                        self.fill(value.add(), depth + 1)
                    else:
                        value.append(self.scalar(field))
            elif field.message_type is not None:
                if depth < 3:
                    self.fill(value, depth + 1)
            else:
                setattr(message, field.name, self.scalar(field))
        return message

    def request(self, descriptor: Descriptor) -> bytes:
        self.budget = REQUEST_CHARS
        message = getattr(pb, descriptor.name)()
        data = self.fill(message).SerializeToString()
        return data + self.wrong_type(descriptor) if self.rng.random() < 0.15 else data

    def wrong_type(self, descriptor: Descriptor) -> bytes:
        """A known field number sent with another wire type (a varint where a string belongs, and so on)."""
        number = self.rng.choice([f.number for f in descriptor.fields] or [1])
        wire = self.rng.choice([0, 1, 2, 5])
        payload = {0: b"\x96\x01", 1: bytes(8), 2: b"\x03\xff\xfe\xfd", 5: bytes(4)}[wire]
        return varint(number << 3 | wire) + payload

    def raw(self, descriptor: Descriptor) -> bytes:
        """Bytes that are not a valid message: truncated, invalid UTF-8, reserved wire types, garbage."""
        r = self.rng
        valid = getattr(pb, descriptor.name)(**{}).SerializeToString() + self.request(descriptor)
        strings = [f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING] or [1]
        return r.choice(
            [
                lambda: valid[: r.randrange(0, len(valid))] if len(valid) > 1 else b"\x0a\x05ab",
                lambda: varint(r.choice(strings) << 3 | 2) + b"\x02\xff\xfe",
                lambda: varint(r.randrange(1, 20) << 3 | r.choice([3, 4, 6, 7])) + r.randbytes(4),
                lambda: r.randbytes(r.randrange(1, 512)),
                lambda: b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10,  # a length of 4 GiB
                lambda: varint(0) + b"\x01",  # field number 0
            ]
        )()


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@dataclass
class Outcome:
    method: str
    code: grpc.StatusCode
    details: str
    kind: str


async def call(channel: grpc.aio.Channel, method: MethodDescriptor, data: bytes, kind: str) -> Outcome:
    path = f"/{SERVICE_NAME}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(data, timeout=CALL_TIMEOUT_S)
            async for _ in stream:
                pass
        else:
            await channel.unary_unary(path)(data, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        return Outcome(method.name, exc.code(), exc.details() or "", kind)
    return Outcome(method.name, Code.OK, "", kind)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    app = compose(fake_ports(FakeGateway()), fake_options(64)).orchestrator
    bound = create_server(app, "127.0.0.1", 0)
    await bound.server.start()
    await bound.health.set(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as ch:
        yield ch
    await bound.server.stop(0)


def test_every_rpc_has_its_documented_codes() -> None:
    missing = {m.name for m in METHODS} - ALLOWED.keys()
    assert not missing, f"add the status codes of {missing} to ALLOWED (the error table of DESIGN.md section 5)"


@pytest.mark.timeout(240)
async def test_randomized_malformed_requests_get_only_documented_codes(channel: grpc.aio.Channel) -> None:
    rng = random.Random(SEED)
    fuzz = Fuzzer(rng)
    work: list[tuple[MethodDescriptor, Callable[[], bytes], str]] = []
    for method in METHODS:
        work += [(method, lambda m=method: fuzz.request(m.input_type), "typed")] * PER_RPC
    work += [(m, lambda m=m: fuzz.raw(m.input_type), "raw") for m in rng.choices(METHODS, k=RAW_REQUESTS)]
    rng.shuffle(work)
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(method: MethodDescriptor, make: Callable[[], bytes], kind: str) -> Outcome:
        async with limit:
            return await call(channel, method, make(), kind)

    outcomes = await asyncio.gather(*(one(*item) for item in work))

    assert len(outcomes) >= 1_000
    unexpected = [o for o in outcomes if o.code not in ALLOWED.get(o.method, set())]
    raw_accepted = [o for o in outcomes if o.kind == "raw" and o.code is Code.OK]
    unbounded = [o for o in outcomes if len(o.details) > DETAIL_LIMIT]
    seen = Counter((o.method, o.code.name) for o in outcomes)
    replay = f"FUZZ_SEED={SEED}; codes seen: {sorted(seen.items())}"
    assert not unexpected, f"{[(o.method, o.code.name, o.details[:200]) for o in unexpected[:10]]} ({replay})"
    assert not unbounded, f"{[(o.method, len(o.details)) for o in unbounded[:10]]} ({replay})"
    # Raw bytes can happen to decode (unknown fields are legal); most must not, and those are INVALID_ARGUMENT.
    assert len(raw_accepted) < RAW_REQUESTS / 2, replay
    assert {o.method for o in outcomes} == {m.name for m in METHODS}

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    status = await call(channel, METHODS[[m.name for m in METHODS].index("GetStatus")], b"", "typed")
    assert status.code is Code.OK
