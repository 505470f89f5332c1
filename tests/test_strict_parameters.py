"""Strict mode also fails a test whose requests carry parameters OpenAI does not define."""

from __future__ import annotations

pytest_plugins = ["pytester"]


def test_strict_mode_names_a_misspelt_parameter(pytester):
    pytester.makepyfile(
        """
        import openai, pytest

        @pytest.mark.poeti_strict
        def test_typo(poeti):
            poeti.stub("ok")
            client = openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key)
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_body={"max_token": 5}
            )

        @pytest.mark.poeti_strict
        def test_clean(poeti):
            poeti.stub("ok")
            client = openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key)
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
            assert reply.choices[0].message.content == "ok"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*strict mode: 1 request(s) sent parameters OpenAI does not define:*", "*max_token*"])
