// A scenario per test: two 429s with Retry-After, then answers. The SDK's own retry loop
// gets through; the session's journal shows every attempt, and nobody else's.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import OpenAI from "openai";

const POETI = process.env.MOCKPOETI_URL ?? "http://127.0.0.1:8080";
const send = (method, url, body) =>
  fetch(url, { method, body: body && JSON.stringify(body) }).then((response) => response.json());

let session;

beforeEach(async () => {
  session = await send("POST", `${POETI}/__admin/sessions`, { scenario: ["retry-then-succeed"] });
});

afterEach(async () => {
  await send("DELETE", `${POETI}/__admin/sessions/${session.id}`);
});

for (const attempt of [1, 2]) {
  test(`the SDK retries through two 429s (run ${attempt}: the scenario starts over in each session)`, async () => {
    const client = new OpenAI({ baseURL: session.base_url, apiKey: session.api_key, maxRetries: 2 });

    const reply = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
    const journal = await send("GET", `${session.root_url}/__admin/requests`);

    assert.equal(reply.object, "chat.completion");
    assert.deepEqual(journal.requests.map((entry) => entry.status), [429, 429, 200]);
  });
}
