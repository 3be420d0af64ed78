// Uses the gateway's web page in the system's headless Chromium as a
// person would, and prints one JSON line: what happened at each step.
// Exits 0 when every step passed.
//
//   node web_page.mjs <gateway-url> <token> <clip> <screenshot-dir>
//
// Steps: a wrong token is refused with the API's words; the right one logs
// in and shows the pool; the clip is uploaded through the form; its row's
// progress bar reaches done; Play starts hls.js and the video advances;
// picking a rung switches to it and the video advances on it. Every
// request the page makes must go to the gateway itself (no CDN), and the
// page must log no error. Screenshots of the pool, the jobs and the player
// go to <screenshot-dir>.

import { basename, join } from "node:path";
import { launchChromium } from "./browser.mjs";

const [origin, token, clip, screenshots] = process.argv.slice(2);
if (!origin || !token || !clip || !screenshots) {
  console.error("usage: node web_page.mjs <gateway-url> <token> <clip> <screenshot-dir>");
  process.exit(2);
}
const patience = 90_000;
const report = { steps: [], foreignRequests: [], pageErrors: [], passed: false };

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on("request", (request) => {
    if (!request.url().startsWith(origin) && !request.url().startsWith("blob:") && !request.url().startsWith("data:")) {
      report.foreignRequests.push(request.url());
    }
  });
  page.on("pageerror", (error) => report.pageErrors.push(error.message));
  page.on("console", (message) => {
    // A refused request (the wrong token's 401) is the API answering, not
    // a page error; anything else the page logs as an error is one.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      report.pageErrors.push(message.text());
    }
  });
  const step = async (name, action) => {
    const started = Date.now();
    try {
      const detail = await action();
      report.steps.push({ name, ok: true, ms: Date.now() - started, detail: detail ?? null });
    } catch (error) {
      report.steps.push({ name, ok: false, ms: Date.now() - started, error: String(error?.message ?? error) });
      throw error;
    }
  };

  await step("a wrong token is refused", async () => {
    await page.goto(`${origin}/`);
    await page.fill("#token", "not-the-token");
    await page.click("#login-form button");
    await page.waitForFunction(() => document.getElementById("login-error").textContent.length > 0);
    const said = await page.textContent("#login-error");
    if (!said.includes("not known")) throw new Error(`the refusal says: ${said}`);
    return said;
  });

  await step("the right token logs in and shows the pool", async () => {
    await page.fill("#token", token);
    await page.click("#login-form button");
    await page.waitForSelector("#app:not([hidden])");
    await page.waitForFunction(() => document.querySelectorAll("#workers tbody tr").length > 0, null, {
      timeout: patience,
    });
    await page.screenshot({ path: join(screenshots, "1-pool.png"), fullPage: true });
    return await page.textContent("#workers tbody");
  });

  await step("the clip is uploaded through the form", async () => {
    await page.setInputFiles("#file", clip);
    await page.fill("#segment-seconds", "2");
    await page.click("#submit-button");
    await page.waitForFunction(() => document.getElementById("submit-message").textContent.startsWith("Queued"), null, {
      timeout: patience,
    });
    return await page.textContent("#submit-message");
  });

  const name = basename(clip);
  const row = `#job-list tbody tr:has(td.input:text-is("incoming/${name}"))`;
  await step("its progress bar reaches done", async () => {
    const seen = new Set();
    const deadline = Date.now() + patience;
    while (Date.now() < deadline) {
      const state = await page.getAttribute(row, "data-state").catch(() => null);
      if (state) seen.add(state);
      if (state === "done") break;
      if (state === "failed") throw new Error(`the job failed: ${await page.textContent(row)}`);
      await page.waitForTimeout(100);
    }
    const value = await page.$eval(`${row} progress`, (bar) => bar.value);
    if (value !== 100) throw new Error(`the progress bar shows ${value}`);
    await page.screenshot({ path: join(screenshots, "2-jobs.png"), fullPage: true });
    return [...seen];
  });

  const currentTime = () => page.$eval("#video", (video) => video.currentTime);
  const advancesBy = async (seconds) => {
    const from = await currentTime();
    await page.waitForFunction(
      ({ from, seconds }) => document.getElementById("video").currentTime >= from + seconds,
      { from, seconds },
      { timeout: patience },
    );
    return [from, await currentTime()];
  };

  await step("Play starts the video and it advances", async () => {
    await page.click(`${row} button.play`);
    await page.waitForSelector("#player:not([hidden])");
    await page.waitForFunction(() => document.getElementById("rung").options.length > 2, null, { timeout: patience });
    return await advancesBy(1);
  });

  await step("a picked rung plays", async () => {
    const options = await page.$$eval("#rung option", (all) => all.map((o) => ({ value: o.value, text: o.text })));
    // The rung it is not playing now.
    const playing = await page.getAttribute("#player-message", "data-level");
    const pick = options.find((o) => o.value !== "-1" && o.value !== playing);
    await page.selectOption("#rung", pick.value);
    await page.waitForFunction(
      (level) => document.getElementById("player-message").dataset.level === level,
      pick.value,
      { timeout: patience },
    );
    const advanced = await advancesBy(0.5);
    await page.screenshot({ path: join(screenshots, "3-player.png"), fullPage: true });
    return { picked: pick.text, said: await page.textContent("#player-message"), advanced };
  });

  report.passed = report.foreignRequests.length === 0 && report.pageErrors.length === 0;
} catch {
  report.passed = false;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.passed ? 0 : 1);
