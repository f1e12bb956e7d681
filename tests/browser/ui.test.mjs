// Browser test of the `pneumo serve` web page, in headless Chromium.
//
//   PNEUMO_URL=http://127.0.0.1:8080 node ui.test.mjs
//
// Env: PNEUMO_URL (required), PNEUMO_SAMPLES_DIR (default
// $PNEUMO_SOURCE_DIR/../shared/data/samples_orig), CHROMIUM (default /usr/bin/chromium),
// PNEUMO_SCREENSHOTS (default ./screenshots). Prints one line per check; exits 1 on
// the first failed check (after saving failure-*.png), 0 when all pass.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = process.env.PNEUMO_SOURCE_DIR || path.resolve(here, '..', '..');
const baseUrl = (process.env.PNEUMO_URL || '').replace(/\/+$/, '');
const samplesDir = process.env.PNEUMO_SAMPLES_DIR || path.resolve(sourceDir, '..', 'shared', 'data', 'samples_orig');
const shotsDir = process.env.PNEUMO_SCREENSHOTS || path.join(here, 'screenshots');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
// With a token, the server is HTTPS with a certificate made for the test: the
// browser context is told to accept it; the page must ask for the token.
const apiToken = process.env.PNEUMO_TOKEN || '';
const authHeaders = apiToken ? { Authorization: 'Bearer ' + apiToken } : {};
const RESULT_TIMEOUT_MS = 120000; // a full-size X-ray with Grad-CAM on 2 busy cores

class CheckFailed extends Error {}
let checks = 0;
function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
  checks++;
  console.log('ok ' + checks + ' - ' + message.replace(/\s+/g, ' '));
}

function sampleImages() {
  const found = [];
  for (const label of ['PNEUMONIA', 'NORMAL']) {
    const dir = path.join(samplesDir, label);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      if (/\.jpe?g$/i.test(name)) found.push(path.join(dir, name));
    }
  }
  return found;
}

const text = (page, testid) => page.getByTestId(testid).innerText();

// Installed before any page script: records CSP violations and uncaught errors.
function watchPage(page, problems) {
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // Listening now makes Playwright intercept file pickers from the start; a listener
  // added just before the key press races with the interception being switched on.
  page.on('filechooser', () => {});
  page.on('console', (m) => {
    // Chromium logs every non-2xx fetch; the error-path check causes one on purpose.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of [45]\d\d/.test(m.text())) {
      problems.push('console error: ' + m.text());
    }
  });
  return page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber);
    });
  });
}

async function expectNoProblems(page, problems, where) {
  const csp = await page.evaluate(() => window.__csp);
  check(csp.length === 0, `${where}: no Content-Security-Policy violations (${csp.join('; ')})`);
  check(problems.length === 0, `${where}: no page or console errors (${problems.join('; ')})`);
}

// Uploads a file by dropping it on the drop zone, as a user dragging from the desktop would.
async function dropFile(page, file) {
  const data = fs.readFileSync(file).toString('base64');
  const transfer = await page.evaluateHandle(({ data, name }) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: 'image/jpeg' }));
    return dt;
  }, { data, name: path.basename(file) });
  await page.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer: transfer });
}

// A w x h PNG of one gray level (8-bit grayscale), built with node:zlib.
function blankPng(w, h, level) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (gray), no interlace
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(w, level)]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

async function dropBytes(page, bytes, name) {
  const transfer = await page.evaluateHandle(({ data, name }) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(data)], name, { type: 'image/png' }));
    return dt;
  }, { data: [...bytes], name });
  await page.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer: transfer });
}

// Passes predict requests through Node so the test sees each answer's body: Chromium's
// inspector may evict large bodies (full-size Grad-CAM PNGs) before they can be read.
async function recordPredictions(page) {
  const answers = [];
  await page.route('**/api/v1/predict*', async (route) => {
    const response = await route.fetch({ timeout: RESULT_TIMEOUT_MS });
    const body = await response.body();
    answers.push({ status: response.status(), body });
    await route.fulfill({ response, body });
  });
  return answers;
}

// Runs `upload` and returns the JSON the server answered, once the page shows it.
async function uploadAndWait(page, answers, upload) {
  const before = answers.length;
  await upload();
  const deadline = Date.now() + RESULT_TIMEOUT_MS;
  while (answers.length === before && Date.now() < deadline) await page.waitForTimeout(100);
  check(answers.length > before, `predict answered within ${RESULT_TIMEOUT_MS / 1000} s`);
  const { status, body } = answers[answers.length - 1];
  check(status === 200, `predict answered HTTP ${status}${status === 200 ? '' : ': ' + body.toString().slice(0, 200)}`);
  await page.getByTestId('result').waitFor({ state: 'visible', timeout: 10000 });
  return JSON.parse(body.toString());
}

async function setRange(page, testid, value) {
  await page.getByTestId(testid).evaluate((el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);
}

async function labelClass(page) {
  return page.getByTestId('result-label').getAttribute('data-class');
}

// The page asks for the token once per tab: a wrong one is refused and asked
// for again, the right one is kept (sessionStorage) for every later request.
async function enterToken(page, where) {
  if (!apiToken) return;
  const form = page.getByTestId('token-form');
  await form.waitFor({ state: 'visible', timeout: 10000 });
  check(true, `${where}: the page asks for the API token`);
  await page.getByTestId('token-input').fill('wrong-token-' + apiToken.slice(0, 4));
  await page.getByTestId('token-submit').click();
  await page.getByTestId('token-wrong').waitFor({ state: 'visible', timeout: 10000 });
  check(await form.isVisible(), `${where}: a wrong token is refused and asked for again`);
  await page.getByTestId('token-input').fill(apiToken);
  await page.getByTestId('token-input').press('Enter'); // the keyboard path; later focus checks need it
  await form.waitFor({ state: 'hidden', timeout: 10000 });
  check(true, `${where}: the right token is accepted`);
}

function floor3(p) {
  return Math.floor(p * 1000 + 1e-9) / 1000;
}

async function desktopChecks(browser, images) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 }, locale: 'en-US', ignoreHTTPSErrors: Boolean(apiToken),
  });
  const page = await context.newPage();
  const problems = [];
  await watchPage(page, problems);
  const answers = await recordPredictions(page);
  try {
    await page.goto(baseUrl + '/', { waitUntil: 'load' });
    check((await page.locator('html').getAttribute('lang')) === 'en', 'page starts in English for an en-US browser');
    check(/medical disclaimer/i.test(await text(page, 'disclaimer-title')), 'medical disclaimer heading is visible');
    check(/not a diagnostic device/i.test(await text(page, 'disclaimer-text')), 'disclaimer says it is not a diagnostic device');
    await enterToken(page, 'desktop');

    // Model metrics and the stored threshold.
    const modelResponse = await page.request.get(baseUrl + '/api/v1/model', { headers: authHeaders });
    check(modelResponse.ok(), 'GET /api/v1/model answers 200');
    const model = await modelResponse.json();
    await page.getByTestId('metrics-table').waitFor({ state: 'visible', timeout: 10000 });
    const rows = await page.locator('[data-testid^="metric-"]').count();
    check(rows >= 4, `metrics table shows ${rows} validation metrics`);
    check(/validation/i.test(await text(page, 'metrics-caption')), 'metrics are labelled as validation figures');
    if (model.metrics && model.metrics.ci95 && model.metrics.ci95.accuracy) {
      check(/\d%?\s–\s\d/.test(await page.getByTestId('metric-accuracy').innerText()), 'accuracy row shows its 95% CI');
      // No interval claims certainty: a zero-width one ("100.0% – 100.0%") is replaced.
      for (const name of ['sensitivity', 'specificity', 'precision', 'accuracy']) {
        const row = await page.getByTestId('metric-' + name).innerText();
        const bounds = row.match(/(\d+(?:\.\d+)?)%\s–\s(\d+(?:\.\d+)?)%/);
        check(bounds && Number(bounds[1]) < Number(bounds[2]), `${name} interval has width ("${row.replace(/\s+/g, ' ')}")`);
      }
    }
    const sliderValue = Number(await page.getByTestId('threshold').inputValue());
    check(Math.abs(sliderValue - model.threshold) <= 0.005,
      `threshold slider starts at the model's threshold (${sliderValue} vs ${model.threshold})`);
    await page.screenshot({ path: path.join(shotsDir, 'desktop-empty-en.png'), fullPage: true });

    // Keyboard: the drop zone opens the file picker with Enter; a non-image is refused readably.
    await page.getByTestId('drop-zone').focus();
    const outline = await page.getByTestId('drop-zone').evaluate((el) => getComputedStyle(el).outlineStyle);
    const [chooser] = await Promise.all([page.waitForEvent('filechooser', { timeout: 5000 }), page.keyboard.press('Enter')]);
    check(true, 'Enter on the focused drop zone opens the file picker');
    check(outline !== 'none', `focused drop zone has a visible focus outline (${outline})`);
    await chooser.setFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('this is not an X-ray\n') });
    await page.getByTestId('error').waitFor({ state: 'visible', timeout: RESULT_TIMEOUT_MS });
    const errorText = await text(page, 'error');
    check(/could not be analyzed/i.test(errorText) && /(not an image|could not be read|too large)/i.test(errorText),
      `a non-image upload shows a readable error ("${errorText}")`);
    check(!(await page.getByTestId('result').isVisible()), 'no result is shown for the refused upload');

    // Real X-ray by drag and drop; skip any the model scores exactly 1 (no threshold could flip it).
    let result = null;
    let image = null;
    for (image of images.slice(0, 3)) {
      result = await uploadAndWait(page, answers, () => dropFile(page, image));
      if (result.probability < 1) break;
    }
    const p = result.probability;
    check(p >= 0 && p < 1, `${path.basename(image)}: probability ${p} in [0, 1)`);
    check(!(await page.getByTestId('error').isVisible()), 'the earlier error is cleared');
    check(Number(await text(page, 'probability')) === floor3(p), `page shows the probability (${await text(page, 'probability')})`);
    if (result.classes) {
      check(await page.getByTestId('subtypes').isVisible() && /bacterial/i.test(await text(page, 'subtypes')),
        `a three-class model's subtypes are shown (${await text(page, 'subtypes')})`);
    }
    const startThreshold = Number(await page.getByTestId('threshold').inputValue());
    check((await labelClass(page)) === (p >= model.threshold ? 'PNEUMONIA' : 'NORMAL'), 'label matches probability vs stored threshold');
    check(/\d/.test(await text(page, 'latency')), `latency is shown (${await text(page, 'latency')})`);
    check((await page.getByTestId('preview').getAttribute('alt')).includes(path.basename(image)), 'preview image has alt text');
    if (Array.isArray(result.warnings) && result.warnings.length) {
      check((await text(page, 'warnings')).includes(result.warnings[0]), 'server warnings are shown');
    }

    // Threshold just at the probability -> PNEUMONIA; one keyboard step above -> NORMAL; back.
    const below = Math.floor(p * 100 + 1e-9) / 100;
    await setRange(page, 'threshold', below.toFixed(2));
    check((await labelClass(page)) === 'PNEUMONIA' && (await text(page, 'result-label')) === 'PNEUMONIA',
      `threshold ${below.toFixed(2)} <= p: label PNEUMONIA`);
    check((await text(page, 'threshold-value')) === below.toFixed(2), 'threshold value is displayed');
    await page.getByTestId('threshold').focus();
    await page.keyboard.press('ArrowRight');
    const above = Number(await page.getByTestId('threshold').inputValue());
    check(Math.abs(above - (below + 0.01)) < 1e-9, `ArrowRight moves the threshold by one step (${above})`);
    check((await labelClass(page)) === 'NORMAL' && (await text(page, 'result-label')) === 'NORMAL',
      `threshold ${above.toFixed(2)} > p: label flips to NORMAL without a new request`);
    check((await page.getByTestId('announce').textContent()).startsWith('NORMAL'),
      'the flipped label is announced to screen readers (role=status)');
    const marker = await page.getByTestId('threshold-marker').evaluate((el) => el.style.left);
    check(Math.abs(parseFloat(marker) - above * 100) < 0.01, `threshold marker on the bar follows the slider (${marker})`);
    await page.keyboard.press('ArrowLeft');
    check((await labelClass(page)) === 'PNEUMONIA', 'ArrowLeft flips it back to PNEUMONIA');
    await setRange(page, 'threshold', startThreshold);

    // Grad-CAM overlay: shown, opacity follows the slider, toggled off and on.
    const heatmap = page.getByTestId('heatmap');
    if (result.gradcam_heatmap_png || result.gradcam_png) {
      check(await heatmap.isVisible(), 'Grad-CAM overlay is visible by default');
      check(await heatmap.evaluate((img) => img.complete && img.naturalWidth > 0), 'Grad-CAM image decoded');
      check(Boolean(await heatmap.getAttribute('alt')), 'Grad-CAM overlay has alt text');
      await setRange(page, 'opacity', 0.7);
      // The overlay fades (CSS transition), so wait for it to settle.
      const settled = await page.waitForFunction(
        () => Math.abs(Number(getComputedStyle(document.querySelector('[data-testid="heatmap"]')).opacity) - 0.7) < 0.01,
        null, { timeout: 3000 }).then(() => true, () => false);
      const opacity = await heatmap.evaluate((img) => getComputedStyle(img).opacity);
      check(settled, `opacity slider sets overlay opacity (${opacity})`);
      await page.screenshot({ path: path.join(shotsDir, 'desktop-result-en.png'), fullPage: true });
      await page.getByTestId('gradcam-toggle').focus();
      await page.keyboard.press('Space');
      check(!(await page.getByTestId('gradcam-toggle').isChecked()) && !(await heatmap.isVisible()),
        'Grad-CAM toggle (Space) hides the overlay');
      check(await page.getByTestId('opacity').isDisabled(), 'opacity slider is disabled while the overlay is off');
      await page.getByTestId('gradcam-toggle').click();
      check(await heatmap.isVisible(), 'Grad-CAM toggle shows the overlay again');
    } else {
      throw new CheckFailed('predict returned neither gradcam_heatmap_png nor gradcam_png although gradcam=1 was asked');
    }

    // Português: every translatable string changes, numbers use a decimal comma, choice is remembered.
    const englishStrings = await page.locator('[data-i18n]').evaluateAll((els) => els.map((el) => el.textContent.trim()));
    const englishDisclaimer = await text(page, 'disclaimer-title');
    await page.getByTestId('lang-pt').click();
    check((await page.locator('html').getAttribute('lang')) === 'pt-BR', '<html lang> becomes pt-BR');
    check((await text(page, 'disclaimer-title')) === 'Aviso médico' && englishDisclaimer !== 'Aviso médico',
      'disclaimer heading is translated ("Aviso médico")');
    const portugueseStrings = await page.locator('[data-i18n]').evaluateAll((els) => els.map((el) => el.textContent.trim()));
    const unchanged = englishStrings.filter((s, i) => s === portugueseStrings[i]);
    check(unchanged.length === 0, `all ${englishStrings.length} static strings are translated (unchanged: ${unchanged.join(' | ')})`);
    const ptLabel = await text(page, 'result-label');
    check(ptLabel === (p >= startThreshold ? 'Pneumonia' : 'Normal'), `decision label translated ("${ptLabel}")`);
    check((await text(page, 'threshold-value')).includes(','), 'threshold uses a decimal comma in Portuguese');
    check(/Limiar de decisão/.test(await page.locator('label[for="threshold"]').innerText()), 'threshold label translated');
    await page.getByTestId('gradcam-toggle').uncheck();
    await page.screenshot({ path: path.join(shotsDir, 'desktop-result-pt.png'), fullPage: true });
    await page.reload({ waitUntil: 'load' });
    check((await page.locator('html').getAttribute('lang')) === 'pt-BR'
      && (await text(page, 'disclaimer-title')) === 'Aviso médico', 'language choice survives a reload (localStorage)');
    await page.getByTestId('lang-en').click();
    check((await text(page, 'disclaimer-title')) === englishDisclaimer, 'switching back restores English');

    // The out-of-distribution gate: a blank image gets a plain notice, no result, in both languages.
    const before = answers.length;
    await dropBytes(page, blankPng(256, 256, 128), 'blank.png');
    await page.getByTestId('ood').waitFor({ state: 'visible', timeout: RESULT_TIMEOUT_MS });
    const refusal = JSON.parse(answers[answers.length - 1].body.toString());
    check(answers.length > before && refusal.out_of_distribution === true && !('probability' in refusal),
      'the API refuses the blank image without a probability');
    check(/does not look like a chest X-ray/.test(await text(page, 'ood')), 'the page says the image does not look like a chest X-ray');
    check(!(await page.getByTestId('result').isVisible()), 'no result is shown for a refused image');
    check(/does not look like a chest X-ray/.test(await text(page, 'viewer-caption')), 'the caption repeats the refusal');
    await page.getByTestId('lang-pt').click();
    check(/não parece uma radiografia de tórax/.test(await text(page, 'ood')), 'the refusal is translated');
    await page.getByTestId('lang-en').click();

    await expectNoProblems(page, problems, 'desktop');
  } catch (e) {
    await page.screenshot({ path: path.join(shotsDir, 'failure-desktop.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function phoneChecks(browser, image) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'pt-BR',
    ignoreHTTPSErrors: Boolean(apiToken),
  });
  const page = await context.newPage();
  const problems = [];
  await watchPage(page, problems);
  const answers = await recordPredictions(page);
  try {
    await page.goto(baseUrl + '/', { waitUntil: 'load' });
    check((await page.locator('html').getAttribute('lang')) === 'pt-BR', 'phone: a pt-BR browser gets Portuguese by default');
    const box = await page.getByTestId('disclaimer').boundingBox();
    check(box && box.y + box.height <= 844, 'phone: the disclaimer is visible without scrolling');
    await enterToken(page, 'phone');
    // Portuguese all the way, server errors included (mapped from the status).
    await page.getByTestId('file-input').setInputFiles({ name: 'nota.txt', mimeType: 'text/plain', buffer: Buffer.from('não é uma radiografia\n') });
    await page.getByTestId('error').waitFor({ state: 'visible', timeout: RESULT_TIMEOUT_MS });
    const errorPt = await text(page, 'error');
    check(/Não foi possível analisar/.test(errorPt) && !/\b(the|is|neither|image)\b/i.test(errorPt),
      `phone: a server error is shown in Portuguese only ("${errorPt}")`);
    await uploadAndWait(page, answers, () => page.getByTestId('file-input').setInputFiles(image));
    // The verdict is in view after the upload, without the user scrolling.
    const verdict = await page.getByTestId('result').boundingBox();
    const scrolled = await page.evaluate(() => window.scrollY);
    check(verdict && verdict.y >= 0 && verdict.y + Math.min(verdict.height, 844) <= 844 + 1,
      `phone: the verdict is in the viewport after upload (top ${verdict && Math.round(verdict.y)}, height ${verdict && Math.round(verdict.height)}, page scrolled by ${scrolled}px)`);
    const label = await page.getByTestId('result-label').boundingBox();
    check(label && label.y >= 0 && label.y + label.height <= 844, 'phone: the NORMAL/PNEUMONIA label itself is on screen');
    const resultPt = await text(page, 'result');
    check(/PNEUMONIA|NORMAL|Pneumonia|Normal/.test(resultPt), 'phone: the result box shows the label');
    await page.getByTestId('heatmap').waitFor({ state: 'visible', timeout: 10000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `phone: no horizontal scrolling (${overflow}px overflow)`);
    const width = (await page.getByTestId('threshold').boundingBox()).width;
    check(width >= 200, `phone: threshold slider is wide enough to use (${Math.round(width)}px)`);
    await page.screenshot({ path: path.join(shotsDir, 'phone-pt.png'), fullPage: true });
    await page.getByTestId('result').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(shotsDir, 'phone-pt-result.png') });
    if (apiToken) check(!(await page.getByTestId('token-form').isVisible()), 'phone: the token was asked for once only');
    await expectNoProblems(page, problems, 'phone');
  } catch (e) {
    await page.screenshot({ path: path.join(shotsDir, 'failure-phone.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function main() {
  if (!baseUrl) {
    console.error('ui.test: set PNEUMO_URL to the base URL of a running `pneumo serve`');
    return 2;
  }
  const images = sampleImages();
  if (!images.length) {
    console.error(`ui.test: no sample X-rays (*.jpeg) under ${samplesDir}/{PNEUMONIA,NORMAL}`);
    return 2;
  }
  fs.mkdirSync(shotsDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
  try {
    await desktopChecks(browser, images);
    await phoneChecks(browser, images[images.length - 1]);
  } finally {
    await browser.close();
  }
  console.log(`ui.test: all ${checks} checks passed; screenshots in ${shotsDir}`);
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  if (e instanceof CheckFailed) console.error(`not ok ${checks + 1} - ${e.message}`);
  else console.error('ui.test: error: ' + (e && e.stack ? e.stack : e));
  console.error(`ui.test: FAILED after ${checks} passing checks (failure screenshot in ${shotsDir})`);
  process.exit(1);
});
