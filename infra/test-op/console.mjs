// The customer's onboarding through the admin console, in a real browser: headless Debian
// chromium driven by playwright-core, every page checked with axe-core in that browser.
//   node console.mjs CONFIG_JSON
// CONFIG_JSON: {"origin", "setupUrl", "ownerEmail", "issuer", "clientId", "clientSecret", "domain", "shots"}.
// Steps: setup link → SSO settings against the test OpenID Provider → domain verification (the
// driver asks its caller to publish the TXT record: it prints {"need":"txt",...} and waits for
// one line on stdin) → test sign-in → generate the SCIM token → an Okta-shaped SCIM create with
// role admin → the team page shows it → change its role → the audit page lists all of it →
// rotate the token → the old token is refused. A screenshot of every page lands in `shots`.
// Prints one JSON line at the end: every step's findings and every page's axe violations.
// Loopback only: the origin and the issuer are the caller's loopback servers.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const cfg = JSON.parse(process.argv[2] || '{}');
for (const k of ['origin', 'setupUrl', 'ownerEmail', 'issuer', 'clientId', 'clientSecret', 'domain', 'shots']) {
  if (!cfg[k]) { console.error(`missing ${k} in CONFIG_JSON`); process.exit(2); }
}
const here = dirname(fileURLToPath(import.meta.url));
const axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const ask = async (need) => {
  console.log(JSON.stringify(need));
  const answer = await Promise.race([
    lines.next(),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer to ${need.need} in 20 s`)), 20000)),
  ]);
  return answer.value;
};

const report = { pages: [], steps: {}, cspViolations: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
let status = 0;
let shot = 0;
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) report.cspViolations.push(m.text());
  });

  // One screenshot and one axe run per page the customer sees. axe is evaluated through the
  // DevTools protocol, so the page's own strict CSP stays on.
  const visit = async (name) => {
    shot += 1;
    const file = join(cfg.shots, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    await page.evaluate(axeSource);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
    });
    report.pages.push({ name, url: page.url(), title: await page.title(), screenshot: file, violations: result });
  };
  const text = async (sel, timeout = 20000) => ((await page.textContent(sel, { timeout })) || '').trim();

  // 1. The setup link: a page with one button; the button signs the owner in.
  await page.goto(cfg.setupUrl);
  await visit('setup-link');
  await Promise.all([page.waitForURL(`${cfg.origin}/console`), page.click('#continue')]);
  await visit('overview');
  report.steps.overview = {
    heading: await text('main h1'),
    scimBaseUrl: await page.inputValue('#scim-base-url').catch(() => null),
    copyButtonsShown: await page.locator('button[data-copy]:visible').count(),
  };

  // 2. Single sign-on settings against the test OpenID Provider.
  await page.goto(`${cfg.origin}/console/sso`);
  await page.fill('#issuer', cfg.issuer);
  await page.fill('#client_id', cfg.clientId);
  await page.fill('#client_secret', cfg.clientSecret);
  await page.fill('#domains', cfg.domain);
  await page.check('#enabled');
  await Promise.all([page.waitForLoadState('load'), page.click('#save')]);
  await visit('sso-saved');
  const body = await page.content();
  const saved = body.includes('Saved.');
  const txtValue = await page.locator('input[value^="butterfly-domain-verification="]').first().inputValue();
  const txtName = await page.locator('input[value^="_butterfly-verification."]').first().inputValue();
  report.steps.sso = { saved, secretShown: body.includes(cfg.clientSecret), txtName };

  // 3. The domain: the caller publishes the TXT record on its DNS server, then "Verify now".
  const published = await ask({ need: 'txt', name: txtName, value: txtValue });
  await Promise.all([page.waitForLoadState('load'), page.click(`button[aria-label="Verify ${cfg.domain} now"]`)]);
  await visit('domain-verified');
  report.steps.domain = { published, verified: (await page.content()).includes(`${cfg.domain} is verified`) };

  // 4. Test sign-in: through the provider's login form and back to a report; the session stays.
  await Promise.all([page.waitForURL((u) => !u.href.startsWith(cfg.origin)), page.click('#test-sign-in')]);
  // The provider's login form; a test sign-in is the admin's own sign-in at the provider.
  if (!(await page.inputValue('input[name=login]'))) await page.fill('input[name=login]', cfg.ownerEmail);
  await page.fill('input[name=password]', 'any password');
  await Promise.all([page.waitForURL((u) => u.href.startsWith(cfg.origin)), page.click('button[type=submit]')]);
  await page.waitForLoadState('load');
  await visit('test-sign-in');
  report.steps.testSignIn = { passed: (await page.content()).includes('The test sign-in passed.') };

  // 5. The SCIM token: generated, shown once.
  await page.goto(`${cfg.origin}/console/scim`);
  await visit('scim');
  await Promise.all([page.waitForLoadState('load'), page.click('#generate')]);
  const firstToken = await page.inputValue('#new-token');
  await visit('scim-token');
  await page.goto(`${cfg.origin}/console/scim`);
  report.steps.scimToken = { prefix: firstToken.slice(0, 9), shownAgain: (await page.content()).includes(firstToken) };

  // 6. Okta provisions a member with role admin (the same calls Okta makes: lookup, then create).
  const scim = async (token, method, path, json) => {
    const r = await fetch(`${cfg.origin}/scim/v2${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json', accept: 'application/scim+json' },
      body: json ? JSON.stringify(json) : undefined,
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  };
  const email = `ada.lovelace@${cfg.domain}`;
  const lookup = await scim(firstToken, 'GET', `/Users?filter=${encodeURIComponent(`userName eq "${email}"`)}&startIndex=1&count=100`);
  const created = await scim(firstToken, 'POST', '/Users', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: email,
    name: { givenName: 'Ada', familyName: 'Lovelace' },
    emails: [{ primary: true, value: email, type: 'work' }],
    displayName: 'Ada Lovelace',
    externalId: '00uADA',
    active: true,
    roles: [{ value: 'admin' }],
  });
  report.steps.provisioned = { lookup: lookup.status, found: lookup.body?.totalResults, create: created.status, id: created.body?.id };

  // 7. The team page shows the member, with the role Okta set; a super_admin changes it.
  await page.goto(`${cfg.origin}/console/team`);
  const row = page.locator(`#member-${created.body?.id}`);
  const rowText = (await row.textContent().catch(() => '')) || '';
  const ownerLastSignIn = ((await page.locator('tr', { hasText: cfg.ownerEmail }).locator('td:nth-child(6)').textContent()) || '').trim();
  await visit('team');
  const select = `#role-${created.body?.id}`;
  const roleBefore = await page.inputValue(select);
  await page.selectOption(select, 'auditor');
  await Promise.all([page.waitForLoadState('load'), row.locator('button[type=submit]').click()]);
  await visit('team-role-changed');
  const changed = await text('#notice-ok', 3000).catch(() => '');
  const warning = await text('#notice-warn', 3000).catch(() => '');
  await page.goto(`${cfg.origin}/console/team`);
  report.steps.team = {
    listed: rowText.includes('Ada Lovelace'),
    ownerLastSignIn,
    sourceScim: rowText.includes('SCIM (Okta)'),
    roleBefore,
    roleAfter: await page.inputValue(select),
    changed,
    warning,
  };

  // 8. The audit page lists all of it, with names and readable times.
  await page.goto(`${cfg.origin}/console/audit`);
  await visit('audit');
  report.steps.audit = { text: ((await page.textContent('main')) || '').replace(/\s+/g, ' ') };

  // 9. Rotate Token, immediately: the new token works, the old one is refused.
  await page.goto(`${cfg.origin}/console/scim`);
  await page.check('#mode-immediate');
  await Promise.all([page.waitForLoadState('load'), page.click('#rotate')]);
  const secondToken = await page.inputValue('#new-token');
  await visit('scim-rotated');
  const oldAnswer = await scim(firstToken, 'GET', '/Users?count=1');
  const newAnswer = await scim(secondToken, 'GET', '/Users?count=1');
  report.steps.rotation = { different: secondToken !== firstToken, old: oldAnswer.status, new: newAnswer.status };
  console.log(JSON.stringify(report));
} catch (e) {
  console.error(String((e && e.stack) || e));
  if (page) {
    // Where it stopped, for whoever reads the failure.
    await page.screenshot({ path: join(cfg.shots, 'failure.png'), fullPage: true }).catch(() => {});
    const seen = await page.textContent('body').catch(() => '');
    console.error(`stopped at ${page.url()}: ${(seen || '').replace(/\s+/g, ' ').slice(0, 1500)}`);
  }
  console.error(JSON.stringify(report));
  status = 1;
} finally {
  stdin.close();
  await browser.close();
}
process.exit(status);
