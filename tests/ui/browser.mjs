// Launches Debian's chromium (never a downloaded browser) with a fresh
// profile, and collects what the test scripts report.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/// A browser context on a fresh profile; `options` as Playwright's
/// context options (httpCredentials for logins).
export async function launch(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "berth-ui-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  const dialogs = [];
  context.on("page", (page) => watch(page, dialogs));
  for (const page of context.pages()) watch(page, dialogs);
  return {
    context,
    dialogs,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

function watch(page, dialogs) {
  page.on("dialog", async (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss();
  });
}

/// Runs `body(args)` and prints one JSON line: `{"ok":true,...}` or
/// `{"ok":false,"error":...}` (exit code 1).
export async function run(body) {
  const [url, artifacts, json] = process.argv.slice(2);
  if (!url || !artifacts) {
    console.error("usage: node <script>.mjs <url> <artifact-dir> [json]");
    process.exit(2);
  }
  mkdirSync(artifacts, { recursive: true });
  const args = json ? JSON.parse(json) : {};
  const report = { ok: false, steps: [] };
  try {
    Object.assign(report, await body({ url, artifacts, args, report }));
    report.ok = true;
  } catch (e) {
    report.error = String(e && e.stack ? e.stack : e);
  }
  console.log(JSON.stringify(report));
  process.exit(report.ok ? 0 : 1);
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/// The repository names a repositories page lists.
export async function listed(page) {
  return page.locator("table.repositories tbody tr td:first-child a").allTextContents();
}
