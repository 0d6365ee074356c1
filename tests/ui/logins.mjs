// With logins on: an anonymous browser sees only what anonymous callers
// may pull; after logging in (HTTP basic, the browser's own dialog) the
// same pages show the private repository too.
//
// args: {"public", "private", "user", "password"}
import { launch, run, check, listed } from "./browser.mjs";
import { join } from "node:path";

run(async ({ url, artifacts, args }) => {
  const anonymous = await launch();
  let anonymousSees;
  try {
    const page = await anonymous.context.newPage();
    await page.goto(`${url}/ui/`);
    anonymousSees = await listed(page);
    await page.screenshot({ path: join(artifacts, "logins-anonymous.png"), fullPage: true });
    check(anonymousSees.includes(args.public), `anonymous sees ${args.public}: ${anonymousSees}`);
    check(!anonymousSees.includes(args.private), `anonymous does not see ${args.private}: ${anonymousSees}`);
    check(await page.locator('a[href="/ui/login"]').count() === 1, "a login link for anonymous callers");
    const hidden = await page.goto(`${url}/ui/repo/${args.private}`);
    check(hidden.status() === 404, `the private repository's page is a 404 for anonymous: ${hidden.status()}`);
    const storage = await page.goto(`${url}/ui/storage`);
    check(storage.ok() && !(await page.locator("main").innerText()).includes(args.private), "the storage page hides it too");
  } finally {
    await anonymous.close();
  }

  const user = await launch({ httpCredentials: { username: args.user, password: args.password } });
  let userSees;
  try {
    const page = await user.context.newPage();
    await page.goto(`${url}/ui/login`);
    check(new URL(page.url()).pathname === "/ui/", `logging in ends on /ui/: ${page.url()}`);
    userSees = await listed(page);
    await page.screenshot({ path: join(artifacts, "logins-user.png"), fullPage: true });
    check(userSees.includes(args.public) && userSees.includes(args.private), `${args.user} sees both: ${userSees}`);
    check((await page.locator("nav .who").innerText()).includes(args.user), "the page names the user");
  } finally {
    await user.close();
  }
  return { anonymous: anonymousSees, user: userSees };
});
