"""Token counts: an answer's count is summed from its sentences' counts, and must equal
what counting the whole text gives (the usage a client reads depends on it)."""

from __future__ import annotations

import pytest

from mockpoeti.answers.generate import count_tokens
from mockpoeti.http.app import make_state


@pytest.mark.parametrize("lang", ["en", "zh", "ja"])
def test_a_counted_answer_has_the_count_of_its_text(lang):
    text = make_state().text
    for seed in range(2000):
        answer, tokens = text.counted_answer(lang, seed)
        assert tokens == count_tokens(answer), (seed, answer)
        assert answer == text.answer(lang, seed)
