// One `mockpoeti serve` for the whole run, and a session of its own for every test:
//   mockpoeti serve --port 8080 &
//   MOCKPOETI_URL=http://127.0.0.1:8080 node --test --test-concurrency=3 tests/node/sessions/*.test.mjs
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import OpenAI from "openai";

const POETI = process.env.MOCKPOETI_URL ?? "http://127.0.0.1:8080";
const send = (method, url, body) =>
  fetch(url, { method, body: body && JSON.stringify(body) }).then((response) => response.json());

let session; // { id, root_url, base_url, api_key, created_at, ... }
let client;

beforeEach(async () => {
  session = await send("POST", `${POETI}/__admin/sessions`, { seed: 7 });
  client = new OpenAI({ baseURL: session.base_url, apiKey: session.api_key });
});

afterEach(async () => {
  await send("DELETE", `${POETI}/__admin/sessions/${session.id}`);
});

test("the weather question gets the stubbed answer", async () => {
  await send("POST", `${session.root_url}/__admin/stubs`, { match: { message: "/weather/" }, respond: "Sunny, 25°C." });

  const reply = await client.chat.completions.create({
    model: "gpt-4o",
    messages: [{ role: "user", content: "What's the weather in Paris?" }],
  });

  assert.equal(reply.choices[0].message.content, "Sunny, 25°C.");
});

test("usage and the journal count this test's calls only", async () => {
  for (let i = 0; i < 3; i++) {
    await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: `call ${i}` }] });
  }

  const usage = await fetch(`${session.root_url}/api/v1/usage`, {
    headers: { authorization: `Bearer ${session.api_key}` },
  }).then((response) => response.json());
  const journal = await send("GET", `${session.root_url}/__admin/requests`);

  assert.equal(usage.data.total_requests, 3);
  assert.equal(journal.requests.length, 4); // the three calls, and the usage request
});
