"""The playbook's indexes answer what the conditions themselves say.

`Playbook.decide` and `near_misses` find which rules a request fails through an index
(`scripting/rule_index.py`) instead of asking every condition of every rule. Here both are
checked against the plain reading of the rules, condition by condition (each condition's
own `holds` and `explain`): on thousands of requests drawn at random against rules drawn at
random from the same pools (globs of every shape, substrings and regexes, headers, subsets
with numbers that compare equal across types, tools, turns, `times`), stubs and scenario
rules together, while stubs come and go and rules are used up.
"""

from __future__ import annotations

import random

import pytest

from mockpoeti.base.catalog import load_catalog
from mockpoeti.base.regexes import compile_linear, required_text, search
from mockpoeti.scripting.loader import parse_scenario, parse_stub
from mockpoeti.scripting.matching import MAX_DIFFERENCE_CHARS, MAX_DIFFERENCES, MAX_PLANS, Playbook, _cut, conditions_of
from mockpoeti.scripting.rule_index import MAX_SHAPE_CHARS, MAX_SHAPES, fewest
from mockpoeti.scripting.view import view_of

CODES = set(load_catalog().errors)
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3", "claude-3-opus", "o1", "", "x" * 5000]
MODEL_GLOBS = ["gpt-4o", "gpt-4o*", "*mini", "*4o*", "claude-?", "claude-[0-9]*", "*", "o1", "gpt-*-mini", "x*"]
MESSAGES = ["What is the capital of France?", "order 42", "refund please", "REFUND", "天气怎么样", "", "capital"]
MESSAGE_WANTS = ["capital", "refund", "/^order [0-9]+$/", "/(?i)refund/", "/天气|weather/", "/capital|nothing/",
                 "France", "/^$/", "/zzz+/"]
HEADER_VALUES = ["acme-1", "acme-2", "globex", None]
HEADER_GLOBS = ["acme-*", "acme-1", "*ex", "*cm*", "glob?x"]
KEYS = ["sk-poeti-acme-1", "sk-poeti-other", None]
KEY_GLOBS = ["sk-poeti-acme-*", "sk-poeti-other", "*other"]
USERS = ["alice", "bob", 1, 1.0, True, None, [1], {"a": 1}]
BODY_WANTS = [{"user": "alice"}, {"user": 1}, {"user": True}, {"user": None}, {"user": "bob", "n": 2},
              {"meta": {"a": 1}}, {"user": [1]}, {"n": 2.0}]


def draw_match(rnd: random.Random) -> dict:
    match: dict = {}
    if rnd.random() < 0.9:
        match["endpoint"] = rnd.choice(["chat", "chat", "usage", "models"])
    if rnd.random() < 0.64:
        match["model"] = rnd.choice(MODEL_GLOBS)
    if rnd.random() < 0.48:
        match["stream"] = rnd.choice([True, False])
    if rnd.random() < 0.64:
        match["message"] = rnd.choice(MESSAGE_WANTS)
    if rnd.random() < 0.48:
        match["headers"] = {rnd.choice(["x-tenant", "x-other"]): rnd.choice(HEADER_GLOBS)}
        if rnd.random() < 0.48:
            match["headers"]["x-other"] = rnd.choice(HEADER_GLOBS)
    if rnd.random() < 0.48:
        match["body"] = rnd.choice(BODY_WANTS)
    if rnd.random() < 0.32:
        match["key"] = rnd.choice(KEY_GLOBS)
    if rnd.random() < 0.32:
        match["last_role"] = rnd.choice(["user", "tool", "assistant"])
    if rnd.random() < 0.24:
        match["tools"] = rnd.choice([True, False, ["get_weather"], ["get_weather", "search"]])
    if rnd.random() < 0.24:
        match["turn"] = rnd.choice([1, 2])
    if rnd.random() < 0.16:
        match["after_tool"] = rnd.choice(["search*", "get_weather"])
    if rnd.random() < 0.16:
        match["path"] = rnd.choice(["/v1/chat/*", "/v1/models", "*usage*"])
    if rnd.random() < 0.16:
        match["method"] = rnd.choice(["POST", "GET"])
    return match


def draw_rule(rnd: random.Random) -> dict:
    rule: dict = {"match": draw_match(rnd), "respond": {"status": 200, "body": {"ok": True}}}
    if rnd.random() < 0.3:
        rule["times"] = rnd.choice([1, 2])
    return rule


def draw_request(rnd: random.Random) -> tuple:
    messages: list = [{"role": "user", "content": rnd.choice(MESSAGES)}]
    if rnd.random() < 0.4:
        called = {"name": rnd.choice(["search_web", "get_weather"]), "arguments": "{}"}
        messages += [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": called}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "result"}]
    if rnd.random() < 0.3:
        messages.append({"role": "user", "content": rnd.choice(MESSAGES)})
    body: dict = {"model": rnd.choice(MODELS), "messages": messages}
    if rnd.random() < 0.5:
        body["stream"] = rnd.choice([True, False])
    if rnd.random() < 0.6:
        body["user"] = rnd.choice(USERS)
    if rnd.random() < 0.3:
        body["n"] = rnd.choice([2, 2.0, 3])
    if rnd.random() < 0.2:
        body["meta"] = rnd.choice([{"a": 1}, {"a": 2}, []])
    if rnd.random() < 0.3:
        names = rnd.choice([["get_weather"], ["search", "get_weather"]])
        body["tools"] = [{"type": "function", "function": {"name": name}} for name in names]
    headers = {"Content-Type": "application/json"}
    for name in ("X-Tenant", "X-Other"):
        value = rnd.choice(HEADER_VALUES)
        if value is not None:
            headers[name] = value
    endpoint, method, path = rnd.choice([("chat", "POST", "/v1/chat/completions"), ("usage", "GET", "/api/v1/usage"),
                                         ("models", "GET", "/v1/models")])
    return endpoint, method, path, headers, body if rnd.random() < 0.95 else "not a dict", rnd.choice(KEYS)


class Plain:
    """The rules read the plain way: every condition of every rule asked, in order."""

    def __init__(self, playbook: Playbook):
        self.playbook = playbook

    def tried(self) -> list[tuple[str, tuple, bool, int | None]]:
        """(label, conditions, used up, times) of every rule in the order they are tried."""
        book = self.playbook
        out = [(s.rule.label, conditions_of(s.rule.match), s.used_up, s.rule.times) for s in book.stubs.newest_first()]
        for i, rule in enumerate(book.scenario_rules):
            used_up = rule.times is not None and book.uses[i] >= rule.times
            out.append((rule.label, conditions_of(rule.match), used_up, rule.times))
        return out

    def decide(self, view) -> str | None:
        for label, conditions, used_up, _ in self.tried():
            if not used_up and all(c.holds(view) for c in conditions):
                return label
        return None

    def near_misses(self, view, limit: int = 3) -> list[dict]:
        scored = []
        for order, (label, conditions, used_up, times) in enumerate(self.tried()):
            diffs = [c.explain(view) for c in conditions if not c.holds(view)]
            if used_up:
                diffs.append(f"times: used up after {times}")
            scored.append((len(diffs), order, {"rule": _cut(label), "differences": [_cut(d) for d in diffs[:MAX_DIFFERENCES]]}))
        return [miss for _, _, miss in sorted(scored, key=lambda s: s[:2])[:limit]]


@pytest.mark.parametrize("seed", range(12))
def test_decide_and_near_misses_agree_with_the_conditions(seed):
    rnd = random.Random(seed)
    rules = [draw_rule(rnd) for _ in range(rnd.randint(0, 30))]
    scenario = parse_scenario({"name": "drawn", "rules": rules}, "drawn.yaml", CODES)
    playbook = Playbook([scenario], seed=1)
    plain = Plain(playbook)
    answered = unanswered = 0
    for step in range(300):
        if rnd.random() < 0.1:  # stubs come and go between requests
            playbook.stubs.add(*parse_stub(draw_rule(rnd), CODES))
        if rnd.random() < 0.02 and len(playbook.stubs):
            playbook.stubs.remove(next(iter(playbook.stubs.newest_first())).id)
        view = view_of(*draw_request(rnd))
        expected = plain.decide(view)
        misses = plain.near_misses(view) if expected is None else None
        decided = view_of(*_same(view))
        decision = playbook.decide(decided)
        assert (decision.label if decision else None) == expected, f"step {step}"
        if expected is None:
            unanswered += 1
            assert playbook.near_misses(decided) == misses, f"step {step}"  # from what decide found
            assert playbook.near_misses(view) == misses, f"step {step}"  # worked out afresh
        else:
            answered += 1
    assert answered >= 5 and unanswered >= 5  # both paths were taken


def _same(view) -> tuple:
    return view.endpoint, view.method, view.path, view.headers, view.body, view.key


def test_near_misses_are_worked_out_again_when_a_stub_came_since_the_request_was_matched():
    playbook = Playbook([], seed=1)
    playbook.stubs.add(*parse_stub({"match": {"model": "gpt-4o"}, "respond": "four"}, CODES))
    view = view_of("chat", "POST", "/v1/chat/completions", {}, {"model": "o1", "messages": []})
    assert playbook.decide(view) is None

    playbook.stubs.add(*parse_stub({"match": {"model": "o1", "stream": True}, "respond": "o1"}, CODES))

    assert playbook.near_misses(view) == [
        {"rule": "stub#2", "differences": ["stream: wanted True, got False"]},
        {"rule": "stub#1", "differences": ["model: wanted gpt-4o, got o1"]},
    ]


@pytest.mark.parametrize(("masks", "expected"), [
    ([], [(0, 0), (0, 1), (0, 2)]),
    ([0b0001], [(0, 1), (0, 2), (0, 3)]),
    ([0b1111, 0b0011, 0b0001], [(1, 2), (1, 3), (2, 1)]),
    ([0b1111, 0b1111, 0b1111, 0b0111, 0b0011], [(3, 3), (4, 2), (5, 0)]),
    ([0b1110, 0b1110, 0b0110], [(0, 0), (2, 3), (3, 1)]),
])
def test_fewest_finds_the_rules_in_fewest_masks_ties_in_order(masks, expected):
    assert fewest(tuple(masks), 0b1111, 3) == expected


def test_what_the_index_keeps_of_requests_is_bounded_in_size():
    """Answers kept by request values hold at most MAX_SHAPES sets of at most MAX_SHAPE_CHARS:
    300 requests with 100 KB models, header values and body values are answered right and
    leave nothing of that size behind (without the size bound: ~90 MB kept)."""
    scenario = parse_scenario({"version": 1, "name": "big", "rules": [
        {"match": {"model": "gpt-*", "headers": {"x-tenant": "acme-*"}, "body": {"user": "alice"}},
         "respond": {"content": "matched"}},
    ]}, "big.yaml", CODES)
    playbook = Playbook([scenario], 1)
    for n in range(300):
        big = f"{n}" + "x" * 100_000
        view = view_of("chat", "POST", "/v1/chat/completions", {"x-tenant": big}, {"model": big, "user": big, "messages": []})
        assert playbook.decide(view) is None
    shapes = playbook._tried.index.shapes
    assert len(shapes) <= MAX_SHAPES
    kept = sum(len(part) for shape in shapes for value in shape
               for part in (value if isinstance(value, tuple) else (value,)) if isinstance(part, str))
    assert kept <= MAX_SHAPES * MAX_SHAPE_CHARS
    small = view_of("chat", "POST", "/v1/chat/completions", {"x-tenant": "acme-1"}, {"model": "gpt-4o", "user": "alice"})
    assert playbook.decide(small) is not None


def test_a_near_miss_keeps_no_more_of_a_long_value_than_it_shows():
    """The journal keeps a near miss as what its conditions say and what they quote: a 1 MB
    model or role is kept as the 200 characters a miss shows, and told the same."""
    scenario = parse_scenario({"name": "long", "rules": [
        {"match": {"model": "gpt-4o", "last_role": "tool", "turn": 2}, "respond": {"content": "x"}}]}, "long.yaml", CODES)
    playbook = Playbook([scenario], seed=1)
    body = {"model": "m" * 2**20, "messages": [{"role": "r" * 2**20, "content": "hi"}]}
    view = view_of("chat", "POST", "/v1/chat/completions", {}, body)
    assert playbook.decide(view) is None

    kept = playbook.noted(view)

    assert max(len(quote) for quote in kept[1] if isinstance(quote, str)) <= MAX_DIFFERENCE_CHARS
    assert playbook.near_misses(view) == Plain(playbook).near_misses(view) == [{"rule": "long/rules[0]", "differences": [
        ("model: wanted gpt-4o, got " + "m" * 2**20)[:199] + "…",
        ("last_role: wanted tool, got " + "r" * 2**20)[:199] + "…",
        "turn: wanted 2, got 0 (user messages)",
    ]}]


def test_a_near_miss_keeps_no_more_of_a_long_rule_than_it_shows():
    wanted = "refund " * 50_000
    playbook = Playbook([], seed=1)
    playbook.stubs.add(*parse_stub({"match": {"message": wanted}, "respond": "x"}, CODES))
    view = view_of("chat", "POST", "/v1/chat/completions", {}, {"model": "o1", "messages": [{"role": "user", "content": ""}]})
    assert playbook.decide(view) is None

    [(_, [(said, _, _)], _)] = playbook.noted(view)[0]

    assert len(said) <= MAX_DIFFERENCE_CHARS + 1
    assert playbook.near_misses(view) == [{"rule": "stub#1", "differences": [(f"message: wanted {wanted!r}")[:199] + "…"]}]


def test_what_an_index_keeps_by_request_values_is_bounded():
    """An index keeps its answers by the request's values (model, key, headers...): at most
    MAX_SHAPES sets of them, none holding more than MAX_SHAPE_CHARS of text."""
    playbook = Playbook([], seed=1)
    playbook.stubs.add(*parse_stub({"match": {"model": "gpt-*", "headers": {"x-tenant": "acme"}}, "respond": "x"}, CODES))

    def miss(model: str) -> None:
        assert playbook.decide(view_of("chat", "POST", "/v1/chat/completions", {}, {"model": model, "messages": []})) is None

    miss("m" * (MAX_SHAPE_CHARS + 1))
    index = playbook.stubs.tried.index
    assert index.shapes == {}
    for i in range(MAX_SHAPES + 10):
        miss(f"model-{i}")
        assert 0 < len(index.shapes) <= MAX_SHAPES


def test_the_near_misses_a_playbook_keeps_by_pattern_of_fails_are_bounded():
    playbook = Playbook([], seed=1)
    for j in range(9):  # each its own header: 512 patterns of fails
        playbook.stubs.add(*parse_stub({"match": {"model": "never", "headers": {f"x-h{j}": "1"}}, "respond": "x"}, CODES))
    for pattern in range(MAX_PLANS + 44):
        headers = {f"x-h{j}": "1" for j in range(9) if pattern >> j & 1}
        view = view_of("chat", "POST", "/v1/chat/completions", headers, {"model": "o1", "messages": []})
        assert playbook.decide(view) is None
        assert playbook.near_misses(view) == Plain(playbook).near_misses(view)
        assert 0 < len(playbook._plans) <= MAX_PLANS


@pytest.mark.parametrize(("pattern", "required"), [
    ("^order [0-9]+$", "order "),
    ("ab*c", "a"),  # the starred b is not required
    ("x{2}yz", "yz"),
    ("a(bc)?de", "de"),
    (r"foo\.bar", "foo"),
    ("[]x]hello", "hello"),  # a class, its `]` first included, is not looked into
    ("weather|天气", ""),  # an alternation: nothing is required of every match
    ("(?i)refund", ""),  # flags: read no further
    (r"\123abc", ""),  # an octal escape, \x41, \pL, \Q...\E: escapes that take more than one character
    (r"\x41bc", ""),
    (r"\pLabc", ""),
])
def test_a_regex_is_searched_only_when_the_text_it_requires_is_there(pattern, required):
    assert required_text(pattern) == required
    if required:  # every text the pattern occurs in holds it, and one without it is answered without RE2
        regex = compile_linear(pattern)
        assert not search(regex, "nothing like it")
