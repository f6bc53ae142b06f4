/**
 * The web dashboard in real headless Chromium against the real Worker (wrangler dev, static assets
 * and API on one origin) and a real provider-agent: sign in, the live environments table, the
 * environment page (event log, exec with confirmation, files, diff, snapshots, runs, actions),
 * screenshots.
 */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page, WebSocket as PageSocket } from "playwright-core";
import { WATCH_WINDOW } from "@outpost/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/lib/agent-process.js";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { launchChromium, measureScreenshot, type Browser } from "./browser.js";
import { connectAgent } from "./environments.js";
import { startHarness, type Harness } from "./helpers.js";

/** Screenshots land here for people to look at (not committed). */
const SHOTS = process.env.OUTPOST_TEST_OUTPUT ? join(process.env.OUTPOST_TEST_OUTPUT, "dashboard") : join(ROOT, "test-output", "dashboard");
const NAME = "web";
/** A file name that is markup: it must show as text and run nothing. */
const HOSTILE = "<img src=x onerror=window.__xss=1>.txt";

let h: Harness;
let browser: Browser;
let page: Page;
let agent: AgentProcess;
let agentToken = "";
let workspace = "";
const problems: string[] = [];
/** Every HTTP request and WebSocket the page opened, to check where the token travels. */
const requested: string[] = [];
const sockets: string[] = [];
/** Event-stream sockets the page holds open now, by environment id (one each). */
const openSockets = new Map<string, number>();
/** The page's WebSockets that are open now. */
const pageSockets = new Set<PageSocket>();
let viewerToken = "";
// page.evaluate takes source strings here: this project's Node types have no DOM.

async function startAgent() {
  ({ agent } = await connectAgent(h, NAME, agentToken, workspace));
}

/** Screenshots the page into SHOTS and checks it is a real render: a sizeable PNG of many colours. */
async function screenshot(name: string) {
  const png = await page.screenshot({ fullPage: true });
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, `${name}.png`), png);
  expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
  const m = await measureScreenshot(browser.context, png);
  expect(m.width).toBe(1280);
  expect(m.colours, `${name}: distinct colours`).toBeGreaterThan(20);
  expect(m.nonBackground, `${name}: share of pixels off the background`).toBeGreaterThan(0.05);
  return m;
}

const stateBadge = (scope: string) => page.locator(`${scope} [data-test=state] .badge`);

beforeAll(async () => {
  h = await startHarness();
  const created = await h.admin.createEnvironment({ name: NAME, provider: "local" });
  agentToken = created.agentToken;
  ({ workspace } = await h.workspace());
  await startAgent();
  // Written after the agent first saw the workspace, so the diff shows them as added.
  await h.admin.writeFile(NAME, "notes/hello.txt", "hello from the dashboard test\n");
  await h.admin.writeFile(NAME, `notes/${HOSTILE}`, "markup in a name\n");
  browser = await launchChromium();
  page = browser.page;
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => requested.push(r.url()));
  page.on("websocket", (ws) => {
    sockets.push(ws.url());
    pageSockets.add(ws);
    ws.on("close", () => pageSockets.delete(ws));
    const env = decodeURIComponent(new URL(ws.url()).pathname.split("/")[3] ?? "");
    openSockets.set(env, (openSockets.get(env) ?? 0) + 1);
    ws.on("close", () => {
      const n = (openSockets.get(env) ?? 1) - 1;
      if (n > 0) openSockets.set(env, n);
      else openSockets.delete(env);
    });
  });
  // The refused sign-in (401) and the viewer's refused action (403) are the failed loads the tests cause on purpose.
  page.on("console", (m) => m.type() === "error" && !/status of 40[13] /.test(m.text()) && problems.push(`console: ${m.text()}`));
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

describe("the dashboard in headless Chromium", () => {
  it("is served at / with a content security policy, while /v1/* stays the API", async () => {
    const res = await fetch(`${h.cp.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await res.text()).toContain('<script type="module" src="/js/app.js">');
    const api = await fetch(`${h.cp.url}/v1/health`);
    expect(await api.json()).toMatchObject({ ok: true });
    const missing = await fetch(`${h.cp.url}/v1/no-such-route`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });

  it("refuses a bad token, then signs in and lists the environment with its state", async () => {
    await page.goto(`${h.cp.url}/`);
    await page.locator("#token").waitFor();
    await screenshot("signin");
    await page.locator("#token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("[data-test=signin] .error").textContent()).toMatch(/Refused \(401\)/);

    await page.locator("#token").fill(h.admin.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    const row = `tr[data-name=${NAME}]`;
    await page.locator(row).waitFor();
    await stateBadge(row).and(page.locator("[data-state=running]")).waitFor();
    await expect.poll(() => page.locator(`${row} td.caps`).textContent()).toContain("exec");
    expect(await page.locator("[data-test=who]").textContent()).toContain("admin");
    expect(await page.evaluate("sessionStorage.getItem('outpost.token')")).toBe(h.admin.token);
    expect(await page.evaluate("localStorage.getItem('outpost.token')")).toBeNull();
    await screenshot("environments");
  });

  it("repaints the state badge live, without a reload, when the agent dies and returns", async () => {
    await page.evaluate("window.__sameDocument = true");
    const row = `tr[data-name=${NAME}]`;
    agent.kill(); // SIGKILL: the socket closes, the object records disconnected at once
    await stateBadge(row).and(page.locator("[data-state=disconnected]")).waitFor({ timeout: 15_000 });
    await startAgent();
    await stateBadge(row).and(page.locator("[data-state=running]")).waitFor({ timeout: 15_000 });
    expect(await page.evaluate("window.__sameDocument")).toBe(true);
  });

  it("pages through the environments (cursor and limit), with a socket only for the rows on screen", async () => {
    for (let i = 0; i < 12; i++) await h.admin.createEnvironment({ name: `paged-${String(i).padStart(2, "0")}`, provider: "local" });
    const rows = page.locator("[data-test=environments] tbody tr");
    const liveIds = async () => (await page.locator("[data-test=environments] tbody tr[data-live]").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-env")))).sort();
    const socketIds = () => [...openSockets.keys()].sort();

    await page.locator("[data-test=page-size]").selectOption("10");
    await expect.poll(() => rows.count()).toBe(10);
    expect(await page.locator("[data-test=list-status]").textContent()).toMatch(/^1–10, more on the next page/);
    expect(await page.locator("[data-test=page-prev]").isDisabled()).toBe(true);
    // every row fits the window: each has its socket, and no environment off the page has one
    await expect.poll(liveIds).toHaveLength(10);
    await expect.poll(socketIds).toEqual(await liveIds());
    const first = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-env")));
    await screenshot("environments-paged");

    await page.locator("[data-test=page-next]").click();
    await expect.poll(() => rows.count()).toBe(3);
    expect(await page.locator("[data-test=page-label]").textContent()).toBe("Page 2");
    expect(await page.locator("[data-test=list-status]").textContent()).toMatch(/^11–13;/);
    expect(await page.locator("[data-test=page-next]").isDisabled()).toBe(true);
    const second = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-env")));
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    await expect.poll(socketIds).toEqual([...second].sort()); // the first page's sockets are closed

    // a short window: only the rows it shows hold a socket, and scrolling moves them
    await page.setViewportSize({ width: 1280, height: 320 });
    await page.locator("[data-test=page-prev]").click();
    await expect.poll(() => rows.count()).toBe(10);
    await expect.poll(async () => (await liveIds()).length).toBeLessThan(10);
    await expect.poll(socketIds).toEqual(await liveIds());
    expect(await liveIds()).toContain(first[0]);
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)");
    await expect.poll(liveIds).toContain(first[9]);
    await expect.poll(liveIds).not.toContain(first[0]);
    await expect.poll(socketIds).toEqual(await liveIds());

    await page.setViewportSize({ width: 1280, height: 860 });
    await page.locator("[data-test=page-size]").selectOption("25");
    await expect.poll(() => rows.count()).toBe(13);
    await expect.poll(liveIds).toHaveLength(13);
    await expect.poll(socketIds).toEqual(await liveIds());
  });

  it("opens the environment page with its record and event log", async () => {
    await page.locator(`tr[data-name=${NAME}] [data-test=env-link]`).click();
    await page.locator("[data-test=env-header] h1").getByText(NAME).waitFor();
    await stateBadge("[data-test=env-header]").and(page.locator("[data-state=running]")).waitFor();
    // the kill and the return above are in the log
    await page.locator("[data-test=events] tr[data-type='agent.disconnected']").first().waitFor();
    await page.locator("[data-test=events] tr[data-type='state.changed']").first().waitFor();
    await screenshot("environment-events");
  });

  it("runs a command through the UI only after confirmation, with its output streamed", async () => {
    await page.locator("[data-tab=exec]").click();
    await page.locator("[data-test=exec-command]").fill("echo hello-from-the-browser");
    await page.locator("[data-test=exec-run]").click();
    const dialog = page.locator("dialog#confirm");
    await dialog.waitFor();
    expect(await dialog.locator("pre.argv").textContent()).toBe('"echo" "hello-from-the-browser"');
    await dialog.locator("[data-test=confirm-cancel]").click();
    await expect.poll(() => page.locator("[data-test=exec-status]").textContent()).toBe("Cancelled.");
    expect(await page.locator("[data-test=exec-output]").textContent()).toBe("");

    await page.locator("[data-test=exec-run]").click();
    await dialog.locator("[data-test=confirm-ok]").click();
    await page.locator("[data-test=exec-exit][data-exit-code='0']").waitFor();
    expect(await page.locator("[data-test=exec-output]").textContent()).toBe("hello-from-the-browser\n");
    await screenshot("environment-exec");
  });

  it("browses to a file, shows its size and content, and shows a hostile file name as text", async () => {
    await page.locator("[data-tab=files]").click();
    await page.locator("[data-test=files] tr[data-path=notes] [data-test=file-link]").click();
    await page.locator("[data-test=crumbs]").getByText("notes").waitFor();
    await page.locator("[data-test=files] tr[data-path='notes/hello.txt'] [data-test=file-link]").click();
    await expect.poll(() => page.locator("[data-test=preview]").textContent()).toBe("hello from the dashboard test\n");
    expect(await page.locator("[data-test=size]").textContent()).toContain("30 bytes");
    const hostile = page.locator("[data-test=files] [data-test=file-link]").getByText(HOSTILE, { exact: true });
    await hostile.waitFor();
    expect(await page.locator("[data-test=files] img").count()).toBe(0);
    expect(await page.evaluate("window.__xss")).toBeUndefined();

    const download = page.waitForEvent("download");
    await page.locator("[data-test=download]").click();
    const file = await download;
    expect(file.suggestedFilename()).toBe("hello.txt");
    await screenshot("environment-files");
  });

  it("shows the workspace diff", async () => {
    await page.locator("[data-tab=diff]").click();
    const entry = page.locator("[data-test=diff] details[data-path='notes/hello.txt']");
    await entry.waitFor();
    expect(await entry.locator(".badge").textContent()).toBe("added");
    expect(await entry.locator("pre.diff .add").allTextContents()).toContain("+hello from the dashboard test\n");
    await screenshot("environment-diff");
  });

  it("takes a snapshot, shows the changes since, exports and downloads it, and restores it, each write confirmed", async () => {
    await page.locator("[data-tab=snapshots]").click();
    await page.locator("[data-test=snapshot-message]").fill("before the change");
    await page.locator("[data-test=snapshot-take]").click();
    await page.locator("dialog#confirm [data-test=confirm-ok]").click();
    await expect.poll(() => page.locator("[data-test=snapshot-status]").textContent(), { timeout: 20_000 }).toMatch(/^Snapshot snap_/);
    const link = page.locator("[data-test=snapshots] [data-test=snapshot-link]").getByText("before the change", { exact: true });
    await link.waitFor();
    const id = await page.locator("[data-test=snapshots] tr", { hasText: "before the change" }).getAttribute("data-snapshot-id");
    expect(id).toMatch(/^snap_/);

    await h.admin.writeFile(NAME, "after-the-snapshot.txt", "written later\n");
    await page.locator("[data-test=snapshot-changes]").click();
    await expect.poll(() => page.locator("[data-test=snapshot-output] pre.diff").textContent(), { timeout: 20_000 }).toContain("+++ b/after-the-snapshot.txt");

    await page.locator("[data-test=snapshot-export]").click();
    await page.locator("dialog#confirm [data-test=confirm-ok]").click();
    const exported = page.locator("[data-test=snapshot-exports] li").first();
    await exported.waitFor({ timeout: 20_000 });
    expect(await exported.textContent()).toMatch(/^bundle, .*sha256 [0-9a-f]{12}…/);
    const download = page.waitForEvent("download");
    await exported.locator("[data-test=export-download]").click();
    const file = await download;
    expect(file.suggestedFilename()).toBe(`${id}.bundle`);
    expect(statSync(await file.path()).size).toBeGreaterThan(0);
    await screenshot("environment-snapshots");

    await page.locator("[data-test=snapshot-restore]").click();
    await page.locator("dialog#confirm [data-test=confirm-ok]").click();
    await page.locator("[data-test=snapshot-restored]").waitFor({ timeout: 20_000 });
    const gone = await h.admin.request("GET", `/v1/environments/${NAME}/files?path=after-the-snapshot.txt`);
    expect(gone.status).toBe(404);
    expect((await h.admin.readFile(NAME, "notes/hello.txt")).toString()).toBe("hello from the dashboard test\n");
  });

  it("shows a run and its output as it streams", async () => {
    await page.locator("[data-tab=runs]").click();
    const res = await h.admin.request("POST", `/v1/environments/${NAME}/runs`, { json: { agent: { command: ["sh", "-c", "echo run-line-1; sleep 0.3; echo run-line-2"] } } });
    expect(res.status).toBe(201);
    const { run } = (await res.json()) as { run: { id: string } };
    const card = page.locator(`[data-test=runs] article[data-run-id='${run.id}']`);
    await card.waitFor();
    await expect.poll(() => card.locator("pre.output").textContent(), { timeout: 10_000 }).toBe("run-line-1\nrun-line-2\n");
    await expect.poll(() => card.locator("[data-test=run-state]").textContent(), { timeout: 10_000 }).toBe("succeeded");
  });

  it("acks the event stream by bytes too: a burst of large run-output events never leaves more than a quarter of the byte window unacknowledged", async () => {
    // What the page's event-stream sockets receive and send from now on: at each ack, the bytes of
    // event frames taken since the previous ack before the last one (which may be the one that
    // crossed the line); and the sockets opened meanwhile (a page too busy to keep up is still closed
    // with 4008 and must resume from its cursor).
    const before: number[] = [];
    const reopened: string[] = [];
    const watch = (ws: PageSocket) => {
      let since = 0;
      let last = 0;
      ws.on("framereceived", (f) => {
        const text = typeof f.payload === "string" ? f.payload : f.payload.toString("utf8");
        if (!text.startsWith('{"v":1,"kind":"event"')) return;
        since += text.length;
        last = text.length;
      });
      ws.on("framesent", (f) => {
        if (typeof f.payload !== "string" || !f.payload.includes('"kind":"ack"')) return;
        before.push(since - last);
        since = 0;
        last = 0;
      });
    };
    const onSocket = (ws: PageSocket) => {
      reopened.push(ws.url());
      watch(ws);
    };
    expect(pageSockets.size, "the environment page holds its event stream open").toBeGreaterThan(0);
    for (const ws of pageSockets) watch(ws);
    page.on("websocket", onSocket);
    try {
      // One and a half byte windows of output (in lines, which a page lays out cheaply), in far fewer than 250 events.
      const size = 1.5 * WATCH_WINDOW.bytes;
      const res = await h.admin.request("POST", `/v1/environments/${NAME}/runs`, { json: { agent: { command: ["sh", "-c", `yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz | head -c ${size}; echo burst-done`] } } });
      expect(res.status).toBe(201);
      const { run } = (await res.json()) as { run: { id: string } };
      const card = page.locator(`[data-test=runs] article[data-run-id='${run.id}']`);
      await expect.poll(() => card.locator("[data-test=run-state]").textContent(), { timeout: 30_000 }).toBe("succeeded");
      await expect.poll(async () => (await card.locator("pre.output").textContent())?.length, { timeout: 30_000 }).toBe(size + "burst-done\n".length);
    } finally {
      page.off("websocket", onSocket);
    }
    // Nothing was lost (the output is whole, above); a socket opened again resumed after its cursor.
    for (const url of reopened) expect(Number(new URL(url).searchParams.get("after")), url).toBeGreaterThan(0);
    // Acked as soon as a quarter of the byte window was taken, not only by count or after a pause.
    expect(before.length).toBeGreaterThan(3);
    expect(Math.max(...before)).toBeLessThan(WATCH_WINDOW.bytes / 4);
  });

  it("stops the environment from the UI after confirmation, and the badge follows", async () => {
    await page.locator("[data-action=stop]").click();
    await page.locator("dialog#confirm [data-test=confirm-ok]").click();
    await stateBadge("[data-test=env-header]").and(page.locator("[data-state=stopped]")).waitFor({ timeout: 20_000 });
    expect(await page.locator("[data-test=action-message]").textContent()).toBe("");
  });

  it("signs out, and a viewer's token shows the pages but its actions are refused by the API", async () => {
    await page.locator("[data-test=signout]").click();
    await page.locator("#token").waitFor();
    expect(await page.evaluate("sessionStorage.getItem('outpost.token') ?? localStorage.getItem('outpost.token')")).toBeNull();
    viewerToken = (await h.client("viewer")).token;
    await page.locator("#token").fill(viewerToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    // signing in returns to the page the sign-out left
    await page.locator("[data-test=env-header] h1").getByText(NAME).waitFor();
    expect(await page.locator("[data-test=who]").textContent()).toContain("viewer");
    await page.locator("[data-action=start]").click();
    await page.locator("dialog#confirm [data-test=confirm-ok]").click();
    await expect.poll(() => page.locator("[data-test=action-message]").textContent()).toMatch(/^start refused \(403\): .*'operator' role/);
    await stateBadge("[data-test=env-header]").and(page.locator("[data-state=stopped]")).waitFor();
  });

  it("logged no page errors or console errors (CSP violations included)", () => {
    expect(problems).toEqual([]);
  });

  it("put the token in no URL but the event stream's documented ?access_token=", () => {
    const tokens = [h.admin.token, viewerToken];
    expect(requested.length).toBeGreaterThan(10);
    expect(requested.filter((u) => tokens.some((t) => u.includes(t)) || u.includes("access_token"))).toEqual([]);
    expect(sockets.length).toBeGreaterThan(0);
    for (const url of sockets) {
      const u = new URL(url);
      expect(u.pathname).toMatch(/^\/v1\/environments\/[^/]+\/events\/stream$/);
      expect(tokens).toContain(u.searchParams.get("access_token"));
    }
  });
});
