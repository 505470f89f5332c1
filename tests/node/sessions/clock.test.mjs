// A clock per test: frozen where the test wants it, moved without sleeping.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import OpenAI from "openai";

const POETI = process.env.MOCKPOETI_URL ?? "http://127.0.0.1:8080";
const send = (method, url, body) =>
  fetch(url, { method, body: body && JSON.stringify(body) }).then((response) => response.json());

let session;
let client;

beforeEach(async () => {
  session = await send("POST", `${POETI}/__admin/sessions`, { seed: 3, clock: "2026-02-28T23:59:30Z" });
  client = new OpenAI({ baseURL: session.base_url, apiKey: session.api_key });
});

afterEach(async () => {
  await send("DELETE", `${POETI}/__admin/sessions/${session.id}`);
});

test("answers carry the session's clock, and a minute passes at once", async () => {
  const ask = () => client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });

  const before = await ask();
  await send("PUT", `${session.root_url}/__admin/clock`, { advance: 60 });
  const after = await ask();

  assert.equal(before.created, Date.parse("2026-02-28T23:59:30Z") / 1000);
  assert.equal(after.created, before.created + 60);
});

test("the same seed gives the same answer in every session", async () => {
  const reply = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  const other = await send("POST", `${POETI}/__admin/sessions`, { seed: 3, clock: "2026-02-28T23:59:30Z" });
  const twin = new OpenAI({ baseURL: other.base_url, apiKey: other.api_key });

  const again = await twin.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  await send("DELETE", `${POETI}/__admin/sessions/${other.id}`);

  assert.deepEqual(again, reply);
});
