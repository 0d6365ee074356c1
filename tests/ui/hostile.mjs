// Content a hostile client pushed (annotations, labels, history, artifact
// types holding HTML and script) must show as text: no dialog fires, the
// text is visible verbatim, and every UI response carries the CSP.
//
// args: {"repository", "tag", "texts": [...]}
import { launch, run, check } from "./browser.mjs";
import { join } from "node:path";

run(async ({ url, artifacts, args }) => {
  const browser = await launch();
  try {
    const page = await browser.context.newPage();
    const headers = [];
    page.on("response", (resp) => {
      if (new URL(resp.url()).pathname.startsWith("/ui/")) {
        headers.push({ url: resp.url(), csp: resp.headers()["content-security-policy"] || null, nosniff: resp.headers()["x-content-type-options"] || null });
      }
    });
    await page.goto(`${url}/ui/repo/${args.repository}`);
    await page.goto(`${url}/ui/manifest/${args.repository}?ref=${args.tag}`);
    await page.waitForLoadState("load");
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(artifacts, "hostile-manifest.png"), fullPage: true });
    const body = await page.locator("main").innerText();
    for (const text of args.texts) {
      check(body.includes(text), `shown verbatim: ${text}`);
    }
    const images = await page.locator("img").count();
    check(images === 0, `no <img> element made it into the page (${images})`);
    const scripts = await page.locator("script").evaluateAll((nodes) => nodes.map((n) => n.getAttribute("src")));
    check(scripts.length === 1 && scripts[0] === "/ui/static/copy.js", `only the copy script: ${scripts}`);
    check(browser.dialogs.length === 0, `no dialog fired: ${browser.dialogs}`);
    check(headers.length > 0 && headers.every((h) => h.csp && h.csp.includes("default-src 'none'") && h.nosniff === "nosniff"), `CSP on every UI response: ${JSON.stringify(headers)}`);
    return { responses: headers.length };
  } finally {
    await browser.close();
  }
});
