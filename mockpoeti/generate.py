"""Seeded answers: text in the prompt's language, tool-call arguments, JSON.

Pure: no I/O, no aiohttp. Faker is imported on first use, not at import time,
because `import faker` alone costs ~75 ms and most servers start before they
answer. Every function takes the seed it must use, so the same seed and request
always give the same bytes, whatever else the server did in between.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping

import orjson

# One token per CJK character, ~4 Latin letters per token, digits by threes,
# punctuation alone: close to what BPE tokenizers count, and the pieces join
# back to the exact text, so a stream of tokens is also a stream of chunks.
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"[{_CJK}]|\s?[A-Za-z]{{1,4}}|\s?\d{{1,3}}|\s?[^\s{_CJK}A-Za-z\d]|\s+")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")

LOCALES = {"zh": "zh_CN", "ja": "ja_JP", "en": "en_US"}
POOL_SIZE = 256


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text)) if text else 0


def language_of(text: str) -> str:
    """`ja` when there is kana, `zh` when there is Han, else `en`."""
    if _KANA.search(text):
        return "ja"
    return "zh" if _HAN.search(text) else "en"


def canonical_json(value: object) -> str:
    """Key-sorted compact JSON: one request seeds one answer, whatever order its
    client wrote the keys in. (orjson: this runs on every call.)"""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an int beyond 64 bits
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def derive_seed(*parts: object) -> int:
    """A stable 64-bit seed from any values (Python's hash() is salted per process)."""
    material = "\x1f".join(p if isinstance(p, str) else repr(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(material.encode(), digest_size=8).digest(), "big")


class TextGenerator:
    """Seeded answers built from a pool of sentences, one pool per language.

    The pools are data (fixtures/sentences.yaml, made by `faker_pool`): Faker
    costs ~150 us an answer, and importing it ~40 ms before the first one. An
    answer only picks and joins sentences with a generator seeded by the
    request. Faker itself is loaded on first use, for tool arguments, JSON mode,
    templates, and languages without a pool. One per server state: Faker
    instances carry their own random state, so sharing them between servers
    (threads) would mix their sequences.
    """

    MEMO_SIZE = 4096

    def __init__(self, pools: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._fakers: dict[str, object] = {}
        self._pools: dict[str, tuple[str, ...]] = dict(pools or {})
        self._memo: dict = {}

    def remember(self, key: object, build):
        """build(), or what it returned for the same key before (bounded, oldest out first)."""
        value = self._memo.get(key)
        if value is None:
            if len(self._memo) >= self.MEMO_SIZE:
                del self._memo[next(iter(self._memo))]
            value = self._memo[key] = build()
        return value

    def faker(self, lang: str):
        fk = self._fakers.get(lang)
        if fk is None:
            from faker import Faker

            fk = self._fakers[lang] = Faker(LOCALES.get(lang, "en_US"))
        return fk

    def pool(self, lang: str) -> tuple[str, ...]:
        pool = self._pools.get(lang)
        if pool is None:
            pool = self._pools[lang] = faker_pool(self.faker(lang), lang)
        return pool

    def answer(self, lang: str, seed: int, sentences: tuple[int, int] = (3, 7)) -> str:
        pool = self.pool(lang)
        rnd = random.Random(seed)
        count = rnd.randint(*sentences)
        picked = [pool[rnd.randrange(len(pool))] for _ in range(count)]
        if lang == "en":
            return " ".join(picked)
        last = count - 1
        return "".join(p + ("。" if i == last or rnd.random() < 0.5 else "，") for i, p in enumerate(picked))

    def value(self, schema: object, seed: int) -> object:
        """A value that satisfies a (simple) JSON Schema: tool arguments, JSON mode."""
        fk = self.faker("en")
        fk.seed_instance(seed)
        root = schema if isinstance(schema, dict) else {}
        return _sample(root, random.Random(seed), fk, "value", 0, root)


_NAMED_STRINGS = {
    "city": "city", "location": "city", "country": "country", "name": "name",
    "email": "email", "address": "address", "company": "company", "url": "url",
    "date": "date", "time": "time", "phone": "phone_number", "query": "sentence",
    "text": "sentence", "title": "sentence", "description": "sentence",
}


def _resolve(schema: dict, root: dict) -> dict:
    """Follow local `$ref`s (`#/$defs/Person`), as Pydantic-made schemas use them."""
    for _ in range(16):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        target: object = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        schema = target if isinstance(target, dict) else {}
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged = {**_resolve(part, root), **merged}
        schema = merged
    return schema


def _sample(schema: dict, rnd: random.Random, fk, name: str, depth: int, root: dict) -> object:
    schema = _resolve(schema, root)
    if schema.get("enum"):
        return rnd.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    for combo in ("anyOf", "oneOf"):
        branches = [b for b in schema.get(combo) or () if isinstance(b, dict)]
        if branches:
            # Optional[X] is anyOf [X, null]: answer with the X
            chosen = next((b for b in branches if _resolve(b, root).get("type") != "null"), branches[0])
            return _sample(chosen, rnd, fk, name, depth, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "integer":
        low, high = int(schema.get("minimum", 1)), int(schema.get("maximum", 100))
        return rnd.randint(low, max(low, high))
    if kind == "number":
        low, high = float(schema.get("minimum", 0)), float(schema.get("maximum", 100))
        return round(rnd.uniform(low, max(low, high)), 2)
    if kind == "boolean":
        return rnd.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        if depth > 4:
            return []
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        size = max(int(schema.get("minItems", 1)), rnd.randint(1, 3))
        return [_sample(items, rnd, fk, name, depth + 1, root) for _ in range(size)]
    if kind == "object":
        if depth > 4:
            return {}
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        if not props:
            return {"result": fk.sentence()}
        return {k: _sample(v if isinstance(v, dict) else {}, rnd, fk, k, depth + 1, root) for k, v in props.items()}
    # strings: pick a Faker provider that fits the field's name
    lowered = name.lower()
    provider = next((p for word, p in _NAMED_STRINGS.items() if word in lowered), "word")
    if schema.get("format") == "date":
        provider = "date"
    elif schema.get("format") == "date-time":
        return fk.iso8601()
    return str(getattr(fk, provider)())


def faker_pool(fk, lang: str, size: int = POOL_SIZE) -> tuple[str, ...]:
    """A language's sentences, from a fixed seed: how fixtures/sentences.yaml was made."""
    fk.seed_instance(derive_seed("pool", lang))
    rnd = random.Random(derive_seed("pool", lang))
    if lang == "en":
        return tuple(fk.sentence(nb_words=rnd.randint(6, 14)) for _ in range(size))
    # CJK: clauses without spaces, punctuated when joined
    return tuple("".join(fk.words(nb=rnd.randint(3, 7))) for _ in range(size))


def json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
