// One scenario = one node:test test with its own Redis, servers, browsers and
// pages. On failure it leaves a screenshot of every page, the pages' console
// output and the servers' logs in test-artifacts/; in every case it closes
// the browsers and stops the servers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { System, REPO } from './system.js';
import { launchChromium, TestPage } from './browser.js';

export const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(REPO, 'test-artifacts');

class Scenario {
  constructor(slug) {
    this.slug = slug;
    this.system = new System();
    this.browsers = [];
    this.pages = [];
  }

  async launch(options) {
    const browser = await launchChromium(options);
    this.browsers.push(browser);
    return browser;
  }

  /** A page in a fresh context of `browser` (fresh profile), opened at `url`. */
  async open(browser, name, url, contextOptions) {
    const p = await TestPage.open(browser, name, contextOptions);
    this.pages.push(p);
    if (url) await p.goto(url);
    return p;
  }

  errors() {
    return this.pages.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`));
  }

  async saveArtifacts() {
    try {
      await mkdir(ARTIFACTS, { recursive: true });
      for (const p of this.pages) {
        const base = path.join(ARTIFACTS, `${this.slug}-${p.name}`);
        await p.screenshot(`${base}.png`).catch((err) => writeFile(`${base}.png.txt`, `no screenshot: ${err.message}\n`));
        await writeFile(`${base}.console.txt`, `${p.console.join('\n')}\nwebsockets: ${p.sockets.join(' ')}\n`);
      }
      await this.system.saveLogs(path.join(ARTIFACTS, `${this.slug}-servers.log`));
      process.stderr.write(`# artifacts of ${this.slug} saved in ${ARTIFACTS}\n`);
    } catch (err) {
      process.stderr.write(`# could not save artifacts of ${this.slug}: ${err.message}\n`);
    }
  }

  async close() {
    for (const p of this.pages) await p.close();
    for (const b of this.browsers) await b.close().catch(() => {});
    await this.system.stop();
  }
}

/**
 * Define a scenario.
 * @param {string} title
 * @param {string} slug  file-name prefix for its artifacts
 * @param {(s: Scenario, t: import('node:test').TestContext) => Promise<void>} body
 */
export function scenario(title, slug, body, { timeout = 120000 } = {}) {
  test(title, { timeout }, async (t) => {
    const s = new Scenario(slug);
    let failed = true;
    try {
      await body(s, t);
      failed = false;
    } finally {
      const errors = s.errors();
      if (failed || errors.length) await s.saveArtifacts();
      await s.close();
      if (!failed) {
        // Scenario 5, checked in every scenario. scripts/e2e counts these
        // subtests to know how many scenarios ran to their end: keep the title.
        await t.test('(5) no uncaught console errors or page errors', () => {
          assert.deepEqual(errors, [], 'the pages logged errors');
        });
      }
    }
  });
}
