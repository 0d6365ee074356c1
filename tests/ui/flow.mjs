// The main path through the UI: find a pushed repository by search, open
// its tag, see its layers and a referrer, delete another tag through the
// form (with its CSRF token) and see it gone. Screenshots at each step.
//
// args: {"repository", "tag", "layers", "referrer_type", "doomed"}
import { launch, run, check, listed } from "./browser.mjs";
import { join } from "node:path";

run(async ({ url, artifacts, args, report }) => {
  const browser = await launch();
  try {
    const page = await browser.context.newPage();
    const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

    const first = await page.goto(`${url}/`);
    check(new URL(page.url()).pathname === "/ui/", `/ redirects a browser to /ui/, got ${page.url()}`);
    check(first.ok(), `the repositories page answers ${first.status()}`);
    await shot("1-repositories");

    const needle = args.repository.split("/").pop();
    await page.fill('input[name="q"]', needle);
    await Promise.all([page.waitForURL(/\?q=/), page.click('form.search button[type="submit"]')]);
    const found = await listed(page);
    check(found.includes(args.repository), `search for ${needle} lists ${args.repository}: ${found}`);
    report.steps.push({ search: needle, found });
    await shot("2-search");

    await Promise.all([page.waitForURL(/\/ui\/repo\//), page.click(`table.repositories a:text-is("${args.repository}")`)]);
    const tags = await page.locator("table.tags tbody tr td:first-child").allTextContents();
    check(tags.includes(args.tag) && tags.includes(args.doomed), `tags ${args.tag} and ${args.doomed} listed: ${tags}`);
    const pull = await page.locator("table.tags td.pull code").first().textContent();
    check(pull.startsWith(`docker pull ${new URL(url).host}/${args.repository}:`), `pull command uses the browser's host: ${pull}`);
    check(await page.locator("table.tags button[data-copy]").first().isVisible(), "the copy button shows with scripts on");
    await shot("3-tags");

    await Promise.all([page.waitForURL(/\/ui\/manifest\//), page.click(`table.tags a:text-is("${args.tag}")`)]);
    const layers = await page.locator("table.layers tbody tr").count();
    check(layers === args.layers, `${args.layers} layers shown, saw ${layers}`);
    const referrers = await page.locator("table.referrers tbody tr").allTextContents();
    check(referrers.some((r) => r.includes(args.referrer_type)), `a referrer of type ${args.referrer_type}: ${referrers}`);
    check(await page.getByText("created_by step one").count() > 0, "history shows created_by");
    report.steps.push({ layers, referrers: referrers.length });
    await shot("4-manifest");

    await page.goto(`${url}/ui/repo/${args.repository}`);
    const row = page.locator("table.tags tbody tr", { has: page.locator(`td:first-child a:text-is("${args.doomed}")`) });
    await Promise.all([page.waitForURL(/deleted=/), row.locator('button:text-is("Delete tag")').click()]);
    const after = await page.locator("table.tags tbody tr td:first-child").allTextContents();
    check(!after.includes(args.doomed), `${args.doomed} gone after the delete: ${after}`);
    check(after.includes(args.tag), `${args.tag} still there: ${after}`);
    check(await page.locator("p.notice").count() === 1, "the page says what was deleted");
    report.steps.push({ deleted: args.doomed, left: after });
    await shot("5-deleted");

    await page.goto(`${url}/ui/storage`);
    check((await page.locator("table.usage").allTextContents()).join("").includes(args.repository), "storage page lists the repository");
    await shot("6-storage");

    check(browser.dialogs.length === 0, `no dialogs: ${browser.dialogs}`);
    return {};
  } finally {
    await browser.close();
  }
});
