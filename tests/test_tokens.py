"""Token counts: an answer's count is summed from its sentences' counts, and must equal
what counting the whole text gives (the usage a client reads depends on it)."""

from __future__ import annotations

import random
import re

import pytest

from mockpoeti.answers import generate
from mockpoeti.answers.generate import count_tokens, tokenize
from mockpoeti.http.app import make_state


@pytest.mark.parametrize("lang", ["en", "zh", "ja"])
def test_a_counted_answer_has_the_count_of_its_text(lang):
    text = make_state().text
    for seed in range(2000):
        answer, tokens = text.counted_answer(lang, seed)
        assert tokens == count_tokens(answer), (seed, answer)
        assert answer == text.answer(lang, seed)


def ascii_texts():
    """Every ASCII character alone, after a space and before a letter, a digit and each other
    kind; and seeded random ASCII strings, control characters included."""
    chars = [chr(c) for c in range(128)]
    yield from chars
    yield from (a + b for a in chars for b in chars)
    yield from (" " + c + "x" for c in chars)
    rng = random.Random(20)
    for _ in range(2000):
        yield "".join(rng.choice(chars) for _ in range(rng.randrange(1, 80)))
    yield "What is the capital of France?\nAnswer in 12,345 words: $(pwd) \x1c\x1f\t\x0b end."


def test_an_ascii_text_is_cut_into_the_same_tokens_without_the_cjk_pattern():
    # tokenize() takes the ASCII pattern for an ASCII text; the full one must agree there
    full = re.compile(generate._TOKEN.pattern)
    for text in ascii_texts():
        assert tokenize(text) == full.findall(text), repr(text)


def test_text_with_cjk_is_cut_by_the_full_pattern():
    assert tokenize("价格 is 12元, ok。") == ["价", "格", " is", " 12", "元", ",", " ok", "。"]
    assert count_tokens("caf\u00e9 crème") == len(re.compile(generate._TOKEN.pattern).findall("caf\u00e9 crème"))


def test_ascii_text_counts_as_the_tokenizer_splits_it():
    """ASCII text is counted on its shape (no regex), other text by the tokenizer:
    both must give the number of pieces `tokenize` cuts, which streams are made of."""
    import random

    from mockpoeti.answers.generate import tokenize

    rnd = random.Random(7)
    every_ascii = [chr(c) for c in range(128)]
    likely = [*"ab Zz09 .,!?\t\n\r\x0b\x0c\x1c\x1f  -_'\"", "word", "1234567", "  ", "\r\n"]
    texts = ["", " ", "  ", "a", " a", "  a", "abcde", " 12345", "a1b2", "x  y", "end ", "\x1c\x1dq", "(1-12345)?"]
    texts += ["".join(rnd.choice(every_ascii if i % 2 else likely) for _ in range(rnd.randint(1, 80))) for i in range(5000)]
    texts += [" ".join(texts[i : i + 12]) for i in range(0, len(texts), 12)]  # past SHORT_TEXT_CHARS, some of them
    assert sum(len(t) > generate.SHORT_TEXT_CHARS for t in texts) > 300
    for text in texts:
        assert count_tokens(text) == len(tokenize(text)), repr(text)
        # the walk that counts short texts and the passes that count long ones agree on both
        assert generate._count_short(text.encode()) == generate._count_long(text.encode()) == len(tokenize(text)), repr(text)


def test_short_prompts_are_walked_only_where_the_walk_is_compiled():
    """Compiled, walking a short text's bytes beats the C passes; interpreted, it costs ~20x more."""
    from mockpoeti import _native

    walked = generate.SHORT_TEXT_CHARS if _native.state == "compiled" else -1
    assert walked == generate._WALK_UP_TO
