// The upload page in a real headless Chromium: load GET /, choose a fixture X-ray, read the
// label the page shows, and the warning for an input unlike a chest film. Also on a
// phone-sized screen. Needs /usr/bin/chromium (Debian's chromium package) and the built
// xray-http binary (XRAY_HTTP_BIN).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { root, startServer } from "./server.mjs";

const expected = JSON.parse(readFileSync(path.join(root, "tests/fixtures/expected.json"), "utf8")).images;
let server, base, browser;

before(async () => {
  ({ server, base } = await startServer());
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function upload(page, name) {
  await page.goto(base);
  await page.setInputFiles("#file", path.join(root, "tests/fixtures/xrays", name));
  await page.waitForSelector("#label, #error", { timeout: 30000 });
  return page;
}

for (const label of ["covid", "normal"]) {
  test(`a ${label} fixture is labelled ${label} on the page`, async () => {
    const name = Object.keys(expected).find((k) => expected[k].label === label);
    const page = await browser.newPage();
    await upload(page, name);
    assert.equal((await page.textContent("#label")).trim().toLowerCase(), label);
    const confidence = parseFloat(await page.textContent("#confidence"));
    assert.ok(confidence >= 50 && confidence <= 100, `confidence ${confidence}`);
    assert.match(await page.textContent("#result"), /not a medical device/i);
    // The film and its heatmap, one shown at a time.
    assert.equal(await page.locator("#preview img").count(), 2);
    assert.equal(await page.locator("#preview img:visible").count(), 1);
    await page.close();
  });
}

test("a DICOM file is labelled like the film it holds, with the heatmap over it", async () => {
  const page = await browser.newPage();
  await page.goto(base);
  await page.setInputFiles("#file", path.join(root, "tests/fixtures/dicom/covid-8bit-explicit.dcm"));
  await page.waitForSelector("#label, #error", { timeout: 30000 });
  assert.ok(await page.isVisible("#label"), await page.textContent("#result"));
  assert.match(await page.textContent("#result"), /not a medical device/i);
  // The overlay: a decoded 192 px PNG beside the label, hidden by its toggle.
  await page.waitForSelector("#heatmap", { state: "visible" });
  const size = await page.$eval("#heatmap", (img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
  assert.deepEqual(size, [192, 192]);
  await page.uncheck("#show-heatmap");
  assert.ok(!(await page.isVisible("#heatmap")));
  await page.check("#show-heatmap");
  assert.ok(await page.isVisible("#heatmap"));
  await page.close();
});

test("a JPEG shows the film and its heatmap by turns", async () => {
  const name = Object.keys(expected).find((k) => expected[k].label === "normal");
  const page = await upload(await browser.newPage(), name);
  await page.waitForSelector("#heatmap", { state: "visible" });
  assert.ok(!(await page.isVisible("#film")));
  await page.uncheck("#show-heatmap");
  assert.ok(await page.isVisible("#film"));
  assert.ok(!(await page.isVisible("#heatmap")));
  await page.close();
});

test("a file that is not an X-ray shows the error code", async () => {
  const page = await browser.newPage();
  await page.goto(base);
  await page.setInputFiles("#file", { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not an image") });
  await page.waitForSelector("#error");
  assert.equal((await page.textContent("#error")).trim(), "not_an_image");
  // No broken picture is left beside the error.
  assert.equal(await page.locator("#preview img").count(), 0);
  await page.close();
});

test("a film unlike the training films shows the API's warning beside the answer", async () => {
  const page = await browser.newPage();
  await upload(page, "../hostile/small-film.png");
  assert.ok(await page.isVisible("#label"), await page.textContent("#result"));
  const warning = page.locator('.input-warning[data-code="small_image"]');
  assert.equal(await warning.count(), 1);
  assert.match(await warning.textContent(), /under 128 px/);
  await page.close();
});

test("what is not a frontal chest X-ray shows not_a_chest_xray, not a label", async () => {
  const page = await browser.newPage();
  await upload(page, "../not-chest/lateral.jpg");
  assert.equal((await page.textContent("#error")).trim(), "not_a_chest_xray");
  assert.ok(!(await page.isVisible("#label")));
  await page.close();
});

test("the page fits a phone-sized screen", async () => {
  const context = await browser.newContext({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const name = Object.keys(expected)[0];
  await upload(page, name);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  assert.ok(await page.isVisible("#label"));
  await page.screenshot({ path: path.join(root, "target", "upload-page-phone.png"), fullPage: true });
  await context.close();
});
