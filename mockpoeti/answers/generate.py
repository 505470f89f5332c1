"""Seeded answers: text in the prompt's language, and values for JSON Schemas (via `structured`).

Pure: no I/O, no aiohttp. Faker is imported on first use, not at import time,
because `import faker` costs ~66 ms and a `Faker("en_US")` ~22 ms more (median of 5
runs, `python -X importtime`), and most servers start before they answer. Every
function takes the seed it must use, so the same seed and request always give the
same bytes, whatever else the server did in between.
"""

from __future__ import annotations

import json
import random
import re
import struct
from collections import OrderedDict
from collections.abc import Mapping
from hashlib import blake2b
from types import FunctionType
from typing import TYPE_CHECKING, Final

import orjson

from mockpoeti.base.lazyregex import LazyPattern

if TYPE_CHECKING:
    from mockpoeti.answers.structured import Budget


# One token per CJK character, ~4 Latin letters per token, digits by threes,
# punctuation alone: close to what BPE tokenizers count, and the pieces join
# back to the exact text, so a stream of tokens is also a stream of chunks.
_CJK: Final = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
# Compiled on first use: sre builds a class of Unicode ranges one character at a time,
# ~4 ms of every start for these two, and most servers never see CJK.
_TOKEN: Final = LazyPattern(rf"[{_CJK}]|\s?[A-Za-z]{{1,4}}|\s?\d{{1,3}}|\s?[^\s{_CJK}A-Za-z\d]|\s+")
_HAN: Final = LazyPattern(r"[\u4e00-\u9fff]")
# _TOKEN's pieces where there can be no CJK: in an ASCII text (str.isascii() reads a flag,
# not the text), as most prompts and every English answer are.
_ASCII_TOKEN: Final = re.compile(r"\s?[A-Za-z]{1,4}|\s?\d{1,3}|\s?[^\sA-Za-z\d]|\s+")
# _TOKEN's count for ASCII text, without the regex engine (whose Unicode classes cost it ~1,500
# instructions a token: a long conversation resent every turn paid that for every word). Each
# byte becomes its class (a letter, 0 digit, space, "." anything else) in one C pass; letter runs
# are cut in fours and digit runs in threes by `replace` until each piece is one byte; then every
# byte but a space is a token, and so is a run of spaces, unless it is one space before a token
# (which takes it in). tests/test_tokens.py checks the two counts agree.
_SPACE: Final = frozenset(c for c in range(128) if re.match(r"\s", chr(c)))
_SHAPES: Final = bytes(
    (ord("a") if chr(c).isalpha() else ord("0") if chr(c).isdigit() else 32 if c in _SPACE else ord(".")) if c < 128 else 0
    for c in range(256)
)
_SPACES: Final = re.compile(b"  +")
_KANA: Final = re.compile(r"[\u3040-\u30ff]")

LOCALES: Final = {"zh": "zh_CN", "ja": "ja_JP", "en": "en_US"}
POOL_SIZE: Final = 256
# the sentence draws: 19 big-endian byte pairs after the count's byte (at most 19 sentences)
_PAIRS: Final = struct.Struct(">19H")
NAMED_POOL_SIZE: Final = 64


def tokenize(text: str) -> list[str]:
    return (_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text)


# _SHAPES' classes, as _count_short reads them
_LETTER: Final = 97  # "a"
_DIGIT: Final = 48  # "0"
_BLANK: Final = 32  # " "
# Up to this length an ASCII text is counted by walking it once (compiled, ~30 instructions a
# byte); past it, by the C passes, whose ~8,000 instructions of calls are then the smaller cost.
# Interpreted, a byte of the walk costs ~600: there the passes win at any length (_WALK_UP_TO).
SHORT_TEXT_CHARS: Final = 256


def count_tokens(text: str) -> int:
    if not text.isascii():
        return len(_TOKEN.findall(text))
    data = text.encode()
    return _count_short(data) if len(data) <= _WALK_UP_TO else _count_long(data)  # most prompts are short


def _count_long(data: bytes) -> int:
    """_ASCII_TOKEN's count in C passes (the comment on _SHAPES)."""
    pieces = (data.translate(_SHAPES).replace(b"aaaa", b"A").replace(b"aaa", b"a").replace(b"aa", b"a")
              .replace(b"000", b"D").replace(b"00", b"0"))
    return len(pieces) - pieces.count(b" ") + len(_SPACES.findall(pieces)) + (pieces[-1:] == b" " and pieces[-2:] != b"  ")


def _count_short(data: bytes) -> int:
    """_ASCII_TOKEN's count, walking the bytes' shapes once: a space starts the token after it,
    unless a space follows it (then the run of spaces is a token); letters go by fours, digits
    by threes, anything else alone."""
    shapes = _SHAPES
    end = len(data)
    i = tokens = 0
    while i < end:
        shape = shapes[data[i]]
        i += 1
        if shape == _BLANK:
            if i == end or shapes[data[i]] == _BLANK:  # a run of spaces (or one at the end): a token
                while i < end and shapes[data[i]] == _BLANK:
                    i += 1
                tokens += 1
                continue
            shape = shapes[data[i]]  # one space, taken in by the token it starts
            i += 1
        room = 3 if shape == _LETTER else 2 if shape == _DIGIT else 0
        while room and i < end and shapes[data[i]] == shape:
            i += 1
            room -= 1
        tokens += 1
    return tokens


# a compiled function is a builtin, not a Python function
_WALK_UP_TO: Final = -1 if isinstance(_count_short, FunctionType) else SHORT_TEXT_CHARS


def language_of(text: str) -> str:
    """`ja` when there is kana, `zh` when there is Han, else `en`."""
    if text.isascii():  # most prompts (a flag of the string, not a pass over it)
        return "en"
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
    material = "\x1f".join([p if isinstance(p, str) else repr(p) for p in parts])
    return int.from_bytes(blake2b(material.encode(), digest_size=8).digest(), "big")


class TextGenerator:
    """Seeded answers built from a pool of sentences, one pool per language.

    The pools are data (fixtures/sentences.yaml, made by `faker_pool`): Faker
    costs ~150 us an answer, and loading it ~90 ms before the first one. An
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
        self._counts: dict[str, tuple[int, ...]] = {}  # each pool sentence's token count
        self._memo: OrderedDict = OrderedDict()
        self._named: dict[str, tuple[str, ...]] = {}

    def remember(self, key: object, build, keep=None):
        """build(), or what it returned for the same key before (bounded, oldest out
        first); a value `keep` refuses (too big to hold on to) is built each time."""
        memo = self._memo
        value = memo.get(key)
        if value is None:
            value = build()
            if keep is None or keep(value):
                if len(memo) >= self.MEMO_SIZE:
                    memo.popitem(last=False)  # O(1): `del d[next(iter(d))]` on a dict walks the holes its deletions left
                memo[key] = value
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
        return self.counted_answer(lang, seed, sentences)[0]

    def counted_answer(self, lang: str, seed: int, sentences: tuple[int, int] = (3, 7)) -> tuple[str, int]:
        """An answer and its token count, summed from its sentences' (counted once per pool):
        tokenizing every answer anew was a tenth of a chat call's cost. The sum is exact:
        an English sentence's first token takes the space before it, and CJK punctuation
        is a token of its own."""
        pool = self.pool(lang)
        counts = self._counts.get(lang)
        if counts is None:
            counts = self._counts[lang] = tuple(count_tokens(s) for s in pool)
        # The draws are the bytes of one hash of the seed: a Random seeded per answer cost
        # more than the rest of the answer together.
        draws = blake2b((seed & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big"), digest_size=64).digest()
        low, high = sentences
        count = low + draws[0] % (high - low + 1)
        size = len(pool)
        # big-endian byte pairs 1-2, 3-4, ... modulo the pool's size; modulo 256, a pair is its low byte: bytes 2, 4, ...
        picks = draws[2 : 2 + 2 * count : 2] if size == 256 else [d % size for d in _PAIRS.unpack_from(draws, 1)[:count]]
        tokens = sum(map(counts.__getitem__, picks))
        if lang == "en":
            return " ".join(map(pool.__getitem__, picks)), tokens
        last = count - 1
        stops = draws[40]  # a bit per sentence: a full stop or a comma after it
        text = "".join([pool[p] + ("。" if i == last or stops >> i & 1 else "，") for i, p in enumerate(picks)])
        return text, tokens + count

    def value(self, schema: object, seed: int, where: str = "schema", budget: Budget | None = None) -> object:
        """A value valid against a JSON Schema (tool arguments, JSON mode), within
        `structured`'s bounds; `where` names the schema in an `invalid_request`."""
        from mockpoeti.answers.structured import generate  # rstr and the schema walker load with the first structured answer

        return generate(schema, random.Random(seed), self.named, where, budget)

    def named(self, provider: str) -> tuple[str, ...]:
        """Realistic strings of one Faker provider (cities, names, URLs), made once
        from a fixed seed: picking one costs a draw, not a Faker call."""
        pool = self._named.get(provider)
        if pool is None:
            fk = self.faker("en")
            fk.seed_instance(derive_seed("named", provider))
            pool = self._named[provider] = tuple(str(getattr(fk, provider)()) for _ in range(NAMED_POOL_SIZE))
        return pool


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
