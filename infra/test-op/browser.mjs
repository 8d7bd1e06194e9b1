// The real-browser sign-in: headless Debian chromium driven by playwright-core.
//   node browser.mjs APP_ORIGIN EMAIL SCREENSHOT_PATH
// Opens APP_ORIGIN/login, types EMAIL, submits; signs in at the provider's login form; waits
// for the signed-in page; saves a screenshot; prints one JSON line with what the page shows.
import { chromium } from 'playwright-core';

const [origin, email, shot] = process.argv.slice(2);
if (!origin || !email || !shot) {
  console.error('usage: node browser.mjs APP_ORIGIN EMAIL SCREENSHOT_PATH');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-dev-shm-usage']  // launch() uses a fresh temporary profile,
});
let status = 0;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${origin}/login`);
  await page.fill('input[name=email]', email);
  await Promise.all([page.waitForURL((u) => !u.href.startsWith(origin)), page.click('button[type=submit]')]);
  // The provider's login form (login_hint prefilled the user name).
  await page.fill('input[name=password]', 'any password');
  await Promise.all([page.waitForURL(`${origin}/`), page.click('button[type=submit]')]);
  const seen = {
    url: page.url(),
    title: await page.title(),
    who: (await page.textContent('#who'))?.trim(),
    email: (await page.textContent('#email'))?.trim(),
    tenant: (await page.textContent('#tenant'))?.trim(),
    role: (await page.textContent('#role'))?.trim(),
  };
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(String(e && e.stack || e));
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
