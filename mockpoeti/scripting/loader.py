"""Scenario files: YAML -> the frozen dataclasses of `scenario`. All validation lives here.

The format is described once (`SCENARIO`, built from `schema.py` types); it
validates files, reporting every problem as `FILE:LINE: path: message`, and
prints the published JSON Schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mockpoeti.answers.chat_request import ROLES
from mockpoeti.answers.script import CHUNKINGS, FAULTS, FINISH_REASONS, Fault, Pacing, Respond, ScriptedCall, Timing
from mockpoeti.answers.templating import check_template
from mockpoeti.base.catalog import shipped_dir
from mockpoeti.base.endpoints import CHAT, ENDPOINTS
from mockpoeti.base.errors import ConfigError
from mockpoeti.base.regexes import MAX_GLOB_CHARS, PatternError, compile_linear, is_glob
from mockpoeti.scripting.scenario import METHODS, Chaos, Match, Rule, Scenario
from mockpoeti.scripting.schema import (
    AnyValue,
    Bool,
    Enum,
    Int,
    ListOf,
    MapOf,
    Num,
    Obj,
    OneOf,
    ShapeError,
    Site,
    Str,
    did_you_mean,
    load_with_lines,
)

if TYPE_CHECKING:
    import yaml

FORMAT_VERSION = 1
MAX_RULES = 5000  # rules of one load (every file and inline scenario of it): each is tried on every request
MAX_NAME_CHARS = 256  # of a scenario's, a rule's or a stub's name: the journal names them in every near miss
MAX_TURN = 100_000  # a `turn` past this is a typo: a body holds at most 100,000 values

# --- checks the types cannot express ---------------------------------------------

def _known_error(code: str, site: Site) -> None:
    codes = sorted(site.context.get("codes", ()))
    if codes and code not in codes:
        site.fail(f"{code!r} is not in the error catalog; {did_you_mean(code, codes)}expected one of {', '.join(codes)}")


def _fault_or_error(name: str, site: Site) -> None:
    choices = sorted(FAULTS) + sorted(site.context.get("codes", ()))
    if name not in choices:
        site.fail(f"{name!r} is neither a fault kind nor an error code; {did_you_mean(name, choices)}"
                  f"expected one of {', '.join(choices)}")


def _template(text: str, site: Site) -> None:
    problem = check_template(text)
    if problem:
        site.fail(problem)


def _glob(text: str, site: Site) -> None:
    """A glob's work grows with its length (`base.regexes`); a plain string is compared as it is, at any length."""
    if is_glob(text) and len(text) > MAX_GLOB_CHARS:
        site.fail(f"a glob of {len(text)} characters; expected at most {MAX_GLOB_CHARS} (a string without * ? [ may be longer)")


def _regex(text: str, site: Site) -> None:
    if _is_regex(text):
        try:
            compile_linear(text[1:-1])
        except PatternError as e:
            site.fail(str(e))


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's field-name
_NOT_IN_A_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but the tab: CR and LF end a header
FRAMING_HEADERS = ("Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer",
                   "Proxy-Connection")
MAX_HEADER_BYTES = 8 * 1024  # of a response's scripted headers, names and values together (clients read ~16 KiB of head)


def _headers(headers: dict, site: Site) -> None:
    """Scripted response headers are written into the answer's head as they are: each must be a
    header HTTP can carry, and the framing is the server's (a scripted Content-Length beside
    another body desynchronises keep-alive; Transfer-Encoding or an upgrade hangs the client)."""
    lines = getattr(headers, "key_lines", {})
    framing = {name.lower(): name for name in FRAMING_HEADERS}
    size = 0
    for name, value in headers.items():
        here = site.child(str(name), lines.get(name))
        text = _header_value(value)
        size += len(str(name)) + len(text.encode("utf-8", "surrogatepass"))
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            here.fail(f"{str(name)[:80]!r} is not a header name; expected letters, digits and !#$%&'*+-.^_`|~ only")
        elif name.lower() in framing:
            here.fail(f"the server frames its answers itself ({', '.join(FRAMING_HEADERS)}): a scripted "
                      f"{framing[name.lower()]} would break the connection")
        elif _NOT_IN_A_VALUE.search(text):
            here.fail("a header value may not hold control characters (CR, LF, NUL, ...)")
    if size > MAX_HEADER_BYTES:
        site.fail(f"{size} bytes of headers; expected at most {MAX_HEADER_BYTES} (names and values together)")


def _timing(timing: dict, site: Site) -> None:
    if "median" not in timing and not ("min" in timing and "max" in timing):
        site.fail("expected {median, sigma} for a lognormal or {min, max} for a uniform timing")
    elif "min" in timing and "max" in timing and timing["min"] > timing["max"]:
        site.fail(f"min ({timing['min']:g}) is greater than max ({timing['max']:g})")


def _fault_params(fault: dict, site: Site) -> None:
    allowed = FAULTS.get(str(fault.get("kind")))
    if allowed is None:
        return  # the kind itself is already reported
    lines = getattr(fault, "key_lines", {})
    for name in fault:
        if name != "kind" and name not in allowed:
            takes = f"expected one of {', '.join(allowed)}" if allowed else "it takes no parameters"
            site.child(name, lines.get(name)).fail(f"not a parameter of fault '{fault['kind']}'; {takes}")


def _rules_or_chaos(scenario: dict, site: Site) -> None:
    if not scenario.get("rules") and "chaos" not in scenario:
        site.child("rules").fail("missing; expected at least one rule (or chaos)")


def _is_regex(text: str) -> bool:
    return len(text) > 1 and text.startswith("/") and text.endswith("/")


# --- the format, described once --------------------------------------------------

_ms = Num(0, 3_600_000)
TIMING = OneOf(
    _ms,
    Obj(
        {"median": Num(0, 3_600_000), "sigma": Num(0, 5), "min": _ms, "max": _ms},
        noun="a timing: {median, sigma} (lognormal) or {min, max} (uniform), with optional caps",
    ).checked_by(_timing),
    noun="milliseconds, or {median, sigma, min, max}",
).described("Milliseconds: a number, a lognormal {median, sigma}, or a uniform {min, max}; min/max cap the lognormal.")

ERROR_CODE = Str().checked_by(_known_error).described("An error-catalog code (fixtures/errors.yaml).")

FAULT = Obj(
    {
        "kind": Enum(tuple(FAULTS), "a fault kind"),
        "after_chunks": Int(0, 100_000),
        "after_ms": _ms,
        "duration_ms": _ms,
        "bytes": Int(1, 1_000_000),
        "interval_ms": _ms,
        "error": ERROR_CODE,
        "message": Str(),
    },
    required=("kind",),
    noun="a fault: {kind, ...}",
).checked_by(_fault_params)
FAULT_OR_KIND = OneOf(Enum(tuple(FAULTS), "a fault kind"), FAULT, noun="a fault kind or {kind, ...}")

STREAM = Obj({
    "chunk": OneOf(Enum(CHUNKINGS, "a chunking"), Int(1, 100_000), noun="token, word, char or a number of characters"),
    "first_chunk_ms": TIMING,
    "interval_ms": TIMING,
    "jitter_ms": _ms,
}, noun="stream pacing: {chunk, first_chunk_ms, interval_ms, jitter_ms}")

RESPOND = Obj({
    "content": Str().checked_by(_template).described(
        "Answer text; {{ message }}, {{ model }}, {{ body.x }}, {{ headers.x }}, {{ faker.name }} are filled in."
    ),
    "tool_calls": ListOf(Obj({"name": Str(), "arguments": OneOf(MapOf(AnyValue()), Str()), "id": Str()}, required=("name",)), 1),
    "finish_reason": Enum(FINISH_REASONS, "a finish reason"),
    "usage": Obj({"prompt_tokens": Int(0, 10**9), "completion_tokens": Int(0, 10**9)}),
    "status": Int(200, 599).described("The answer's status: a final one, 200 to 599."),
    "headers": MapOf(OneOf(Str(), Num(), noun="a string or a number")).checked_by(_headers).described(
        "Extra response headers; the framing ones (Content-Length, Transfer-Encoding, Connection, ...) are the server's."
    ),
    "body": AnyValue().described("A raw body: a string is sent as is, anything else as JSON."),
    "error": ERROR_CODE,
    "message": Str(),
    "latency_ms": TIMING,
    "stream": STREAM,
    "fault": FAULT_OR_KIND,
}, noun="a response: {content, error, status, body, fault, ...}")

MATCH = Obj({
    "endpoint": Enum(ENDPOINTS, "an endpoint"),
    "method": Enum(METHODS, "an HTTP method"),
    "path": Str().checked_by(_glob).described("Exact path, or a glob such as /api/v1/*"),
    "model": Str().checked_by(_glob).described("Exact model id, or a glob such as gpt-4*"),
    "stream": Bool(),
    "message": Str().checked_by(_regex).described("Substring of the last user message, or /regex/"),
    "headers": MapOf(Str().checked_by(_glob)),
    "body": MapOf(AnyValue()).described("A JSON subset the request body must contain"),
    "key": Str().checked_by(_glob).described("The API key (exact, or a glob such as sk-poeti-acme-*)"),
    "last_role": Enum(ROLES, "a message role").described("Role of the request's last message, e.g. tool"),
    "tools": OneOf(Bool(), ListOf(Str(), 1), noun="true, false or a list of tool names").described(
        "true: the request declares at least one tool; false: none; a list: exactly these function names (any order)"
    ),
    "turn": Int(1, MAX_TURN).described("The request carries exactly this many user messages (1: the first question)"),
    "after_tool": Str().checked_by(_glob).described(
        "The last message is the result of a call to a function so named (exact, or a glob such as search*)"
    ),
}, noun="a match: {endpoint, model, stream, message, ...}")

RULE = Obj({
    "name": Str(MAX_NAME_CHARS),
    "match": MATCH,
    "respond": OneOf(RESPOND, ListOf(RESPOND, 1), noun="a response or a list of responses"),
    "times": Int(1, 10**9),
}, required=("respond",), noun="a rule: {match, respond, times}")

_STUB = Obj(
    RULE.fields, required=RULE.required, noun="a stub: {match, respond, times} (respond may be a string)"
)

CHAOS = Obj({
    "rate": Num(0, 1),
    "faults": ListOf(OneOf(Str().checked_by(_fault_or_error), FAULT, noun="a fault kind, an error code or {kind, ...}"), 1),
    "seed": Int(),
    "match": MATCH,
}, required=("rate", "faults"), noun="chaos: {rate, faults, seed, match}")

SCENARIO = Obj({
    "version": Int(FORMAT_VERSION, FORMAT_VERSION),
    "name": Str(MAX_NAME_CHARS),
    "description": Str(),
    "seed": Int(),
    "rules": ListOf(RULE),
    "chaos": CHAOS,
}, required=("name",), noun="a scenario: {name, description, seed, rules, chaos}").checked_by(_rules_or_chaos)


def json_schema() -> dict:
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mockpoeti.dev/scenario.schema.json",
        "title": "mockpoeti scenario",
    }
    out.update(SCENARIO.schema())
    return out


# --- loading -------------------------------------------------------------------

def find_scenario(name_or_path: str) -> Path:
    """A path as given, else a shipped scenario by name (`retry-then-succeed`)."""
    path = Path(name_or_path)
    shipped = shipped_dir("scenarios") / f"{name_or_path}.yaml"
    if not path.exists() and _is_name(name_or_path) and shipped.exists():
        return shipped
    return path


def _is_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and Path(text).suffix not in (".yaml", ".yml")


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in shipped_dir("scenarios").glob("*.yaml"))


def scenario_files(targets: Iterable[str]) -> list[Path]:
    """Files named, and the *.yaml / *.yml files of folders named (sorted)."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            files.append(find_scenario(target))
    return files


def load_scenario(path: str | Path, error_codes: Iterable[str]) -> Scenario:
    """Read and validate one file; raise ConfigError listing every problem."""
    import yaml  # with the first file (schema.py): PyYAML is not part of a start that reads none

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if _is_name(str(path)):
            raise ConfigError([f"{path}:1: no such scenario file, and no shipped scenario by that name; "
                               f"shipped: {', '.join(shipped_scenarios())}"]) from None
        raise ConfigError([f"{path}:1: no such scenario file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}:1: cannot read: {e}"]) from None
    try:
        data = load_with_lines(text)
    except ShapeError as e:
        raise ConfigError([f"{path}:{e.line}: {e.message}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}:{_yaml_problem(e)}"]) from None
    return parse_scenario(data, str(path), error_codes)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """`LINE: not valid YAML: what (while parsing what started on line N)`."""
    mark = getattr(e, "problem_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and context_mark is not None and context_mark.line + 1 != line:
        problem += f" ({context} that starts on line {context_mark.line + 1})"
    return f"{line}: not valid YAML: {problem}"


def load_scenarios(names: Iterable[str], error_codes: Iterable[str]) -> list[Scenario]:
    """The scenarios of files and folders, in order. A file named twice is read once (and
    active twice: each copy counts its own `times`); all of them together hold at most MAX_RULES."""
    problems: list[str] = []
    scenarios: list[Scenario] = []
    codes = set(error_codes)
    seen: dict[str, Scenario | None] = {}  # resolved path -> its scenario (None: it had problems)
    for path in scenario_files(names):
        try:
            same = str(path.resolve())
        except (OSError, RuntimeError):
            same = str(path)
        if same not in seen:
            try:
                seen[same] = load_scenario(path, codes)
            except ConfigError as e:
                seen[same] = None
                problems.extend(e.problems)
        scenario = seen[same]
        if scenario is not None:
            scenarios.append(scenario)
    if problems:
        raise ConfigError(problems)
    return limit_rules(scenarios)


def limit_rules(scenarios: list[Scenario]) -> list[Scenario]:
    """The scenarios of one load, if together they hold at most MAX_RULES rules: every request
    is tried against them (stubs are bounded apart, by MAX_STUBS)."""
    total = 0
    for scenario in scenarios:
        total += len(scenario.rules)
        if total > MAX_RULES:
            raise ConfigError([f"{scenario.source}:1: with this scenario, one load holds {total} rules or more; "
                               f"at most {MAX_RULES} (MAX_RULES) are tried on every request"])
    return scenarios


def parse_scenario(data: Any, source: str, error_codes: Iterable[str]) -> Scenario:
    site = Site(source, context={"codes": set(error_codes)})
    if data is None:
        site.fail("the file is empty; expected a scenario: {name, rules}")
        raise ConfigError(site.problems)
    rules = data.get("rules") if isinstance(data, dict) else None
    if isinstance(rules, list) and len(rules) > MAX_RULES:  # refused before thousands of rules are checked
        line = getattr(data, "key_lines", {}).get("rules")
        site.child("rules", line).fail(f"{len(rules)} rules; a load holds at most {MAX_RULES} (MAX_RULES)")
        raise ConfigError(site.problems)
    SCENARIO.check(data, site)
    if site.problems:
        raise ConfigError(site.problems)
    return _build(data, source)


def parse_stub(data: Any, error_codes: Iterable[str], source: str = "stub") -> tuple[Rule, dict]:
    """A stub, `{match, respond, times, name}`, checked exactly like a scenario's rule.

    `respond` may also be a string (short for `{content: ...}`), alone or in a list;
    without `endpoint` or `path`, a stub matches chat calls. Returns the rule and
    the stub as it will be listed (plain JSON). Raises ConfigError with the problems,
    each `path: message` (no FILE:LINE: a stub has no file).
    """
    site = Site(source, context={"codes": set(error_codes)})
    if isinstance(data, dict):
        data = _plain(data)
        if "respond" in data:
            data["respond"] = _short_respond(data["respond"])
        if isinstance(data.get("match"), dict) and not {"endpoint", "path"} & data["match"].keys():
            data["match"] = {"endpoint": CHAT, **data["match"]}
    _STUB.check(data, site)
    if site.problems:
        raise ConfigError([p.removeprefix(f"{source}:1: ") for p in site.problems])
    if "match" not in data:
        data = {"match": {"endpoint": CHAT}, **data}
    return _rule(data, source, 0, 1), data


def _short_respond(respond: Any) -> Any:
    if isinstance(respond, str):
        return {"content": respond}
    if isinstance(respond, list):
        return [{"content": r} if isinstance(r, str) else r for r in respond]
    return respond


# --- dicts -> dataclasses (only after validation passed) -----------------------------

def _build(data: dict, source: str) -> Scenario:
    name = data["name"]
    rules = []
    rule_lines = getattr(data.get("rules"), "item_lines", [])
    for i, rule in enumerate(data.get("rules") or []):
        rules.append(_rule(rule, name, i, rule_lines[i] if i < len(rule_lines) else 1))
    chaos = None
    if data.get("chaos") is not None:
        c = data["chaos"]
        chaos = Chaos(
            rate=float(c["rate"]),
            responses=tuple(
                Respond(fault=_fault(f)) if isinstance(f, dict) or f in FAULTS else Respond(error=f) for f in c["faults"]
            ),
            seed=c.get("seed"),
            match=build_match(c["match"]) if "match" in c else Match(endpoint=CHAT),
        )
    return Scenario(
        name=name,
        description=data.get("description", ""),
        source=source,
        seed=data.get("seed"),
        rules=tuple(rules),
        chaos=chaos,
    )


def _rule(rule: dict, scenario: str, index: int, line: int) -> Rule:
    raw = rule["respond"]
    items = raw if isinstance(raw, list) else [raw]
    item_lines = getattr(raw, "item_lines", [])
    return Rule(
        scenario=scenario,
        index=index,
        line=line,
        name=rule.get("name", ""),
        match=build_match(rule.get("match") or {}),
        responses=tuple(
            _respond(r, item_lines[j] if j < len(item_lines) else getattr(r, "line", 1)) for j, r in enumerate(items)
        ),
        times=rule.get("times"),
    )


def build_match(m: dict) -> Match:
    """A Match from a validated `match` mapping."""
    message = m.get("message")
    if isinstance(message, str) and _is_regex(message):
        message = compile_linear(message[1:-1])
    return Match(
        endpoint=m.get("endpoint"),
        method=m.get("method"),
        path=m.get("path"),
        model=m.get("model"),
        stream=m.get("stream"),
        message=message,
        headers=tuple((str(k).lower(), str(v)) for k, v in (m.get("headers") or {}).items()),
        body=_plain(m["body"]) if "body" in m else None,
        key=m.get("key"),
        last_role=m.get("last_role"),
        tools=frozenset(tools) if isinstance(tools := m.get("tools"), list) else tools,
        turn=m.get("turn"),
        after_tool=m.get("after_tool"),
    )


def _respond(r: dict, line: int) -> Respond:
    usage = r.get("usage")
    return Respond(
        line=line,
        content=r.get("content"),
        tool_calls=tuple(
            ScriptedCall(
                name=c["name"],
                arguments=c["arguments"]
                if isinstance(c.get("arguments"), str)
                else json.dumps(_plain(c.get("arguments") or {}), ensure_ascii=False),
                id=c.get("id"),
            )
            for c in r.get("tool_calls") or ()
        ),
        finish_reason=r.get("finish_reason"),
        usage=None if usage is None else (usage.get("prompt_tokens"), usage.get("completion_tokens")),
        status=r.get("status"),
        headers=tuple((str(k), _header_value(v)) for k, v in (r.get("headers") or {}).items()),
        body=_plain(r.get("body")),
        has_body="body" in r,
        error=r.get("error"),
        message=r.get("message"),
        latency=_timing_of(r.get("latency_ms")),
        pacing=_pacing(r["stream"]) if "stream" in r else None,
        fault=_fault(r["fault"]) if "fault" in r else None,
    )


def _header_value(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _timing_of(t: Any) -> Timing | None:
    if t is None:
        return None
    if not isinstance(t, dict):
        return Timing(fixed_ms=float(t))
    return Timing(median_ms=t.get("median"), sigma=float(t.get("sigma", 0)), min_ms=t.get("min"), max_ms=t.get("max"))


def _pacing(s: dict) -> Pacing:
    return Pacing(
        chunk=s.get("chunk", "token"),
        first_chunk=_timing_of(s.get("first_chunk_ms")),
        interval=_timing_of(s.get("interval_ms")),
        jitter_ms=float(s.get("jitter_ms", 0)),
    )


def _fault(f: str | dict) -> Fault:
    if isinstance(f, str):
        return Fault(kind=f)
    params = {k: v for k, v in f.items() if k != "kind"}
    return Fault(kind=f["kind"], **params)


def _plain(value: Any) -> Any:
    """LineDict/LineList -> dict/list, so bodies serialize and compare as plain JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
