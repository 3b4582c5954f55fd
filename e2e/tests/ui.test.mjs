// Browser tests of the web UI against a running `rmmbridge demo` (started by e2e/run.sh, which passes
// RMMBRIDGE_E2E_URL and RMMBRIDGE_E2E_PASSWORD). Headless Debian Chromium through playwright-core.
// The tests run in order and build on each other, like an admin's first session with the demo.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = (process.env.RMMBRIDGE_E2E_URL || "").replace(/\/$/, "");
const PASSWORD = process.env.RMMBRIDGE_E2E_PASSWORD || "";
const SHOTS = process.env.RMMBRIDGE_E2E_SCREENSHOTS || "target/e2e-screenshots";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const NCENTRAL = "Contoso N-central (simulated)";
const NINJA = "Fabrikam NinjaOne (simulated)";

assert.ok(BASE && PASSWORD, "RMMBRIDGE_E2E_URL and RMMBRIDGE_E2E_PASSWORD must be set (e2e/run.sh does)");
mkdirSync(SHOTS, { recursive: true });

let browser;
let admin; // the admin's browser context, signed in by the second test
let page;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
});

async function newPage(viewport = { width: 1366, height: 768 }) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(20_000);
  return { context, page: await context.newPage() };
}

async function shot(p, name) {
  await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(p, username, password) {
  await p.goto(`${BASE}/login`);
  await p.fill('input[name="username"]', username);
  await p.fill('input[name="password"]', password);
  await p.click('button[type="submit"]');
}

async function openIntegration(p, name) {
  await p.goto(`${BASE}/integrations`);
  await p.click(`#integrations a:text-is("${name}")`);
  await p.waitForSelector("h1");
}

async function csrfOf(p) {
  return p.getAttribute('input[name="csrf_token"]', "value");
}

test("a wrong password is refused with a message", async () => {
  const { context, page: p } = await newPage();
  await signIn(p, "admin", "not-the-password");
  const alert = p.locator('[role="alert"]');
  await alert.waitFor();
  assert.match(await alert.innerText(), /Wrong username or password/);
  assert.ok(p.url().endsWith("/login"), p.url());
  await shot(p, "01-login-failed");
  await context.close();
});

test("the admin signs in and the dashboard shows both demo integrations", async () => {
  ({ context: admin, page } = await newPage());
  await signIn(page, "admin", PASSWORD);
  await page.waitForSelector("#dashboard-integrations");
  assert.equal(new URL(page.url()).pathname, "/");
  assert.equal(await page.innerText("#current-user"), "admin");
  assert.equal(await page.innerText("#current-role"), "admin");
  const table = await page.innerText("#dashboard-integrations");
  assert.ok(table.includes(NCENTRAL), table);
  assert.ok(table.includes(NINJA), table);
  assert.match(table, /Needs consent/);
  assert.equal(await page.innerText("#count-integrations"), "2");
  await shot(page, "02-dashboard");
});

test("verifying N-central shows every check passing", async () => {
  await openIntegration(page, NCENTRAL);
  await page.click("#verify");
  await page.waitForSelector("#verification");
  assert.equal(await page.innerText("#verify-outcome"), "all checks passed");
  const rows = page.locator("#verification tbody tr");
  const n = await rows.count();
  assert.ok(n >= 5, `expected the named checks, got ${n}`);
  for (let i = 0; i < n; i++) {
    const cls = await rows.nth(i).getAttribute("class");
    assert.match(cls, /check-pass/, `check ${await rows.nth(i).innerText()}`);
  }
  assert.match(await page.innerText("#verification"), /Devices visible/);
  assert.equal(await page.innerText("#status"), "Healthy");
  await shot(page, "03-ncentral-verified");
});

test("the current MFA code of the stored N-central secret is shown", async () => {
  await page.click("#show-totp");
  await page.waitForSelector("#totp-code");
  assert.match(await page.innerText("#totp-code"), /^\d{6}$/);
});

test("NinjaOne consent goes through the simulator's authorize page and survives a reload", async () => {
  await openIntegration(page, NINJA);
  assert.match(await page.innerText("#consent-state"), /not given/);
  // Before consent, verification names the missing consent.
  await page.click("#verify");
  await page.waitForSelector("#verification");
  assert.equal(await page.innerText("#verify-outcome"), "a check failed");
  assert.match(await page.innerText("#verification"), /Consent given/);
  await page.click("#consent");
  // NinjaOne's (simulated) authorization page, on another origin.
  await page.waitForSelector("#allow");
  assert.match(await page.title(), /authorize application/i);
  assert.match(await page.innerText("#scopes"), /monitoring/);
  await shot(page, "04-ninjaone-authorize");
  await page.click("#allow");
  await page.waitForSelector("text=Consent stored");
  assert.ok(page.url().startsWith(`${BASE}/consent-callback`), page.url());
  await page.click("text=Back to the integration");
  await page.waitForSelector("#consent-state");
  assert.match(await page.innerText("#consent-state"), /given.*by admin/);
  await page.reload();
  assert.match(await page.innerText("#consent-state"), /given.*by admin/);
  await page.click("#verify");
  await page.waitForSelector("#verification");
  assert.equal(await page.innerText("#verify-outcome"), "all checks passed");
  const rows = page.locator("#verification tbody tr");
  for (let i = 0; i < (await rows.count()); i++) {
    assert.match(await rows.nth(i).getAttribute("class"), /check-pass/, await rows.nth(i).innerText());
  }
  assert.equal(await page.innerText("#status"), "Healthy");
  await shot(page, "05-ninjaone-consented");
});

test("Sync now shows the run's progress until it finishes", async () => {
  await openIntegration(page, NCENTRAL);
  await page.click("#sync-now");
  await page.waitForURL(/\/sync-runs\/\d+/);
  await page.waitForSelector("#stages");
  const state = await page.innerText("#run-state");
  assert.ok(["running", "succeeded"].includes(state), state);
  await shot(page, "06-sync-progress");
  // The page follows the run by itself (polling); no reload here.
  await page.waitForFunction(() => document.querySelector("#run-state")?.textContent !== "running", null, {
    timeout: 120_000,
  });
  assert.equal(await page.innerText("#run-state"), "succeeded");
  const fetched = await page.locator('dt:text-is("Devices fetched") + dd').innerText();
  assert.ok(Number(fetched) > 0, `fetched ${fetched}`);
  await shot(page, "07-sync-finished");
  await page.goto(`${BASE}/sync-runs`);
  assert.match(await page.innerText("#sync-runs"), /succeeded/);
  await page.goto(`${BASE}/`);
  assert.match(await page.innerText("#dashboard-integrations"), /succeeded/);
  await shot(page, "08-dashboard-after-sync");
});

test("the edit form shows the set-up help and the redirect URI to paste", async () => {
  await openIntegration(page, NINJA);
  await page.click("#edit");
  await page.waitForSelector("#integration-form");
  assert.equal(await page.innerText("#redirect-uri"), `${BASE}/consent-callback`);
  assert.match(await page.innerText(".help"), /Administration › Apps › API/);
  await shot(page, "09-ninjaone-edit");
  await page.goto(`${BASE}/integrations/new?kind=ncentral`);
  assert.match(await page.innerText(".help"), /Generate JSON Web Token/);
  await shot(page, "10-ncentral-add");
});

let viewerPassword;

test("the admin creates a viewer, whose password is shown once", async () => {
  await page.goto(`${BASE}/users`);
  await page.fill('#add-user input[name="username"]', "vera");
  await page.selectOption('#add-user select[name="role"]', "viewer");
  await page.click('#add-user button[type="submit"]');
  await page.waitForSelector("#new-password");
  viewerPassword = (await page.innerText("#new-password")).trim();
  assert.ok(viewerPassword.length >= 12);
  assert.match(await page.innerText("#users"), /vera/);
  await shot(page, "11-users");
  await page.goto(`${BASE}/audit`);
  assert.match(await page.innerText("#audit"), /user\.create/);
  await shot(page, "12-audit");
});

test("a viewer sees no admin buttons and is refused an admin action", async () => {
  const { context, page: v } = await newPage();
  await signIn(v, "vera", viewerPassword);
  await v.waitForSelector("#current-role");
  assert.equal(await v.innerText("#current-role"), "viewer");
  await v.goto(`${BASE}/integrations`);
  assert.equal(await v.locator("#add-ncentral").count(), 0);
  await openIntegration(v, NCENTRAL);
  for (const id of ["#verify", "#sync-now", "#edit", "#show-totp"]) {
    assert.equal(await v.locator(id).count(), 0, `${id} is hidden from viewers`);
  }
  assert.equal(await v.locator('a[href="/users"]').count(), 0);
  // The server refuses anyway, with a page that says why.
  const csrf = await csrfOf(v);
  const r = await context.request.post(`${BASE}/users`, {
    form: { csrf_token: csrf, username: "mallory", role: "admin" },
  });
  assert.equal(r.status(), 403);
  assert.match(await r.text(), /role \(viewer\) may not do this; it needs the admin role/i);
  const r2 = await context.request.post(`${BASE}/integrations`, {
    form: { csrf_token: csrf, kind: "ncentral", name: "x", server_url: "https://nc.example.com", jwt: "x" },
  });
  assert.equal(r2.status(), 403);
  await v.goto(`${BASE}/users`);
  assert.match(await v.innerText("main"), /Not allowed/);
  await shot(v, "13-viewer-refused");
  await context.close();
});

test("a form posted without the CSRF token is refused", async () => {
  const r = await admin.request.post(`${BASE}/users`, { form: { username: "csrf-victim", role: "admin" } });
  assert.equal(r.status(), 403);
  assert.match(await r.text(), /CSRF token/);
  const bad = await admin.request.post(`${BASE}/users`, {
    form: { csrf_token: "forged", username: "csrf-victim", role: "admin" },
  });
  assert.equal(bad.status(), 403);
  await page.goto(`${BASE}/users`);
  assert.doesNotMatch(await page.innerText("#users"), /csrf-victim/);
});

// Until the client-mapping pages exist, the admin maps both RMMs' clients through the JSON client
// mapping API with the browser's own session (cookie + X-CSRF-Token), as a script would: auto-match
// (identical names), create tenants for the rest, Finish (which starts each device import). The
// mapping branch replaces this with the real UI flow.
async function mapAllClients(context, csrf) {
  const headers = { "X-CSRF-Token": csrf };
  const list = await context.request.get(`${BASE}/api/v1/integrations`);
  assert.equal(list.status(), 200);
  const integrations = await list.json();
  const started = Date.now();
  for (const name of [NCENTRAL, NINJA]) {
    const i = integrations.find((x) => x.name === name);
    assert.ok(i, `integration ${name}`);
    for (const step of ["clients/refresh", "clients/auto-match", "clients/create-unmatched", "apply"]) {
      const r = await context.request.post(`${BASE}/api/v1/integrations/${i.id}/${step}`, { headers });
      assert.equal(r.status(), 200, `${name} ${step}: ${await r.text()}`);
    }
    // Finish started the device import; wait for it before mapping the next RMM, so its clients
    // auto-match the tenants this one created.
    for (;;) {
      const runs = await (await context.request.get(`${BASE}/api/v1/sync-runs?integration_id=${i.id}`)).json();
      const latest = runs.find((r) => r.integration_id === i.id);
      if (latest && latest.state !== "running" && latest.started_at >= started - 1000) {
        assert.equal(latest.state, "succeeded", JSON.stringify(latest));
        break;
      }
      assert.ok(Date.now() - started < 180_000, "the syncs after Finish did not end");
      await new Promise((res) => setTimeout(res, 500));
    }
  }
}

test("after mapping, computers are listed, searchable and explained, and decisions can be resolved", async () => {
  await page.goto(`${BASE}/computers`);
  await mapAllClients(admin, await csrfOf(page));

  await page.goto(`${BASE}/computers`);
  await page.waitForSelector("#computers");
  const count = await page.innerText("#computer-count");
  const total = Number(count.split(" of ")[1]);
  assert.ok(total > 50, count);
  assert.equal(await page.locator("#computers tbody tr").count(), 50);
  await shot(page, "16-computers");
  // Keyset paging: the next page starts after the last row, the first page is one click away.
  await page.click("#next-page");
  await page.waitForSelector("#first-page");
  assert.match(await page.innerText("#computer-count"), new RegExp(`^51–\\d+ of ${total}$`));
  await page.click("#first-page");
  assert.match(await page.innerText("#computer-count"), /^1–50 of/);

  // A machine both RMMs report: open it from the list and read why it is one computer.
  const both = page.locator("#computers tbody tr", { has: page.locator(".rmm-ncentral") }).filter({
    has: page.locator(".rmm-ninjaone"),
  });
  assert.ok((await both.count()) > 0, "some listed computers are in both RMMs");
  const name = await both.first().locator("td a").first().innerText();
  await page.fill('#computer-filters input[name="q"]', name);
  await page.click('#computer-filters button[type="submit"]');
  await page.waitForURL(/q=/);
  await page.click(`#computers a:text-is("${name}")`);
  await page.waitForSelector("#why");
  const why = await page.innerText("#why");
  assert.match(why, /reported by Contoso N-central \(simulated\) and Fabrikam NinjaOne \(simulated\)/);
  assert.equal(await page.locator('#agents [data-kind="ncentral"]').count() >= 1, true);
  assert.equal(await page.locator('#agents [data-kind="ninjaone"]').count() >= 1, true);
  assert.match(await page.innerText("#agents"), /rule: /);
  await shot(page, "17-computer-why");

  await page.goto(`${BASE}/tenants`);
  await page.waitForSelector("#tenants");
  assert.ok((await page.locator("#tenants tbody tr").count()) >= 10);
  await shot(page, "18-tenants");
  await page.click("#tenants tbody tr:first-child td a");
  await page.waitForSelector("#tenant-clients");
  await shot(page, "19-tenant");

  await page.goto(`${BASE}/decisions`);
  await page.waitForSelector("h1");
  await shot(page, "20-decisions");
  const open = page.locator("#decisions .decision");
  if ((await open.count()) > 0) {
    const first = open.first();
    const id = await first.getAttribute("data-decision");
    page.once("dialog", (d) => d.accept());
    const merge = first.locator("button.merge");
    await ((await merge.count()) > 0 ? merge.first() : first.locator("button.keep-separate")).click();
    await page.waitForSelector("#decision-notice");
    assert.match(await page.innerText("#decision-notice"), new RegExp(`ManualDecision ${id} resolved by admin`));
    assert.equal(await page.locator(`#decision-${id}`).count(), 0);
    await shot(page, "21-decision-resolved");
  } else {
    console.log("# the demo's data raised no ManualDecision; the queue is empty");
  }
});

test("wide screen and sign out", async () => {
  const { context, page: w } = await newPage({ width: 1920, height: 1080 });
  await signIn(w, "admin", PASSWORD);
  await w.waitForSelector("#dashboard-integrations");
  await shot(w, "14-dashboard-wide");
  await w.goto(`${BASE}/tokens`);
  await w.fill('#create-token input[name="name"]', "e2e");
  await w.click('#create-token button[type="submit"]');
  await w.waitForSelector("#new-token");
  assert.match(await w.innerText("#new-token"), /\S{20,}/);
  await shot(w, "15-tokens");
  await w.click('button:text-is("Sign out")');
  await w.waitForURL(/\/login/);
  await w.goto(`${BASE}/`);
  assert.ok(await w.locator('input[name="password"]').count());
  await context.close();
});
