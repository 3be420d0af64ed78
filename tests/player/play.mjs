// Plays hlsmux outputs with hls.js in the system's headless Chromium and
// prints what happened as one JSON line per output; exits 0 when every
// playback passed.
//
//   node play.mjs <segment-seconds> <segments-after-switch> <master-playlist>...
//
// For each output it serves the master playlist's directory and hls.js over
// HTTP on loopback, starts playback (muted, so autoplay is allowed), waits
// until the current time passes two segments, forces a switch to another
// rung, and waits until that rung's fragments play on for
// <segments-after-switch> more segments (or to the end of a shorter
// video). Any hls.js error
// event, or a deadline passed, fails it, with one exception, reported apart
// as `tolerated`: hls.js 1.7 raises a non-fatal bufferAppendNoProgress once
// for the first fragment of an alternate audio rendition in MPEG-TS (its
// append-progress heuristic, video-dev/hls.js#7941), for ffmpeg's own
// output of that layout too; audio then buffers and plays. A stall of the
// media clock with a second or more buffered ahead is reported apart too
// (`stalls`: headless Chromium on a loaded machine), and playback must
// still reach its goals in time.
//
// With MEDIA_ORIGIN_PORT and MEDIA_ORIGIN_ROOT set, a second server on that
// loopback port serves that directory (the output root) to other origins
// (CORS), as a CDN serves outputs made with a base URL: the page and master
// playlist come from the first origin, everything else from the second.

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./browser.mjs";

const [segmentArg, afterSwitchArg, ...masters] = process.argv.slice(2);
if (!segmentArg || !afterSwitchArg || masters.length === 0) {
  console.error("usage: node play.mjs <segment-seconds> <segments-after-switch> <master-playlist>...");
  process.exit(2);
}
const segmentSeconds = Number(segmentArg);
const afterSwitch = Number(afterSwitchArg) * segmentSeconds;
// The output being played: the server serves its directory.
let outputDir = "";
const here = dirname(fileURLToPath(import.meta.url));
const hlsJs = join(here, "node_modules/hls.js/dist/hls.js");
const deadlineMs = 60_000;

const types = {
  ".m3u8": "application/vnd.apple.mpegurl",
  ".ts": "video/mp2t",
  ".key": "application/octet-stream",
  ".js": "text/javascript",
  ".html": "text/html",
};

const page = `<!doctype html><meta charset="utf-8"><video id="v" muted playsinline></video>
<script src="/hls.js"></script>`;

// Serves `/` (the page), `/hls.js`, and files under root(); `cors` lets
// pages of other origins read them.
function serve(root, cors) {
  return createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://x").pathname);
    const shared = cors ? { "access-control-allow-origin": "*", "access-control-allow-headers": "range" } : {};
    if (request.method === "OPTIONS") {
      response.writeHead(204, shared);
      response.end();
      return;
    }
    try {
      let body;
      if (path === "/" && !cors) body = Buffer.from(page);
      else if (path === "/hls.js" && !cors) body = await readFile(hlsJs);
      else {
        const file = normalize(join(root(), path));
        if (!file.startsWith(normalize(root()))) throw new Error("outside");
        if (!(await stat(file)).isFile()) throw new Error("not a file");
        body = await readFile(file);
      }
      const type = path === "/" ? ".html" : extname(path);
      const range = request.headers.range?.match(/bytes=(\d+)-(\d*)/);
      if (range) {
        const start = Number(range[1]);
        const end = range[2] ? Number(range[2]) : body.length - 1;
        response.writeHead(206, {
          ...shared,
          "cache-control": "no-store",
          "content-type": types[type] ?? "application/octet-stream",
          "content-range": `bytes ${start}-${end}/${body.length}`,
          "accept-ranges": "bytes",
        });
        response.end(body.subarray(start, end + 1));
        return;
      }
      // Outputs played one after another share URLs: nothing may be cached.
      response.writeHead(200, {
        ...shared,
        "cache-control": "no-store",
        "content-type": types[type] ?? "application/octet-stream",
        "accept-ranges": "bytes",
      });
      response.end(body);
    } catch {
      response.writeHead(404, shared);
      response.end();
    }
  });
}

const server = serve(() => outputDir, false);
const mediaRoot = process.env.MEDIA_ORIGIN_ROOT;
const mediaServer = process.env.MEDIA_ORIGIN_PORT ? serve(() => mediaRoot, true) : null;
if (mediaServer) {
  await new Promise((resolve) =>
    mediaServer.listen(Number(process.env.MEDIA_ORIGIN_PORT), "127.0.0.1", resolve),
  );
}
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await launchChromium();
let allPassed = true;
try {
  for (const master of masters) {
    outputDir = dirname(master);
    let result = await play(`/${basename(master)}`);
    // A load the browser aborted on loopback (Chromium starved on a loaded
    // CI machine) says nothing of the output: such a playback, and only
    // such, is played once more, and the first try is reported with it.
    const onlyAborted =
      result?.passed === false &&
      result.errors.length > 0 &&
      result.errors.every((error) => error.startsWith("networkError/aborted"));
    if (onlyAborted) {
      const aborted = result;
      result = { ...(await play(`/${basename(master)}`)), retriedAfter: aborted.errors };
    }
    console.log(JSON.stringify({ master, ...result }));
    allPassed &&= result?.passed === true;
  }
} finally {
  await browser.close();
  server.close();
  mediaServer?.close();
}
process.exit(allPassed ? 0 : 1);

async function play(masterUri) {
  const tab = await browser.newPage();
  try {
    await tab.goto(`${origin}/`);
    return await tab.evaluate(
    async ({ segmentSeconds, afterSwitch, deadlineMs, masterUri }) => {
      const video = document.getElementById("v");
      const report = {
        supported: Hls.isSupported(),
        errors: [],
        tolerated: [],
        stalls: [],
        levels: [],
        playedLevels: [],
        switchedTo: null,
        timeAtSwitch: null,
        currentTime: 0,
        passed: false,
      };
      if (!report.supported) return report;
      const hls = new Hls({ debug: false, enableWorker: true });
      hls.on(Hls.Events.ERROR, (_, data) => {
        const text = `${data.type}/${data.details}${data.fatal ? " (fatal)" : ""} on ${data.parent ?? "?"} fragment ${data.frag?.sn ?? "?"}: ${data.error?.message ?? ""}`;
        // The media clock standing still while a second or more is
        // buffered ahead is the browser's (a loaded machine), not the
        // output's: hls.js nudges it on, and playback must still reach its
        // goals before the deadline. Missing or broken media shows as
        // other errors, or as a stall with nothing buffered.
        if (
          !data.fatal &&
          data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR &&
          (data.buffer ?? 0) >= 1
        ) {
          report.stalls.push(text);
          return;
        }
        const firstAudioAppend =
          !data.fatal &&
          data.details === Hls.ErrorDetails.BUFFER_APPEND_NO_PROGRESS &&
          data.parent === "audio" &&
          data.appendsWithoutProgress === 1;
        (firstAudioAppend && report.tolerated.length === 0 ? report.tolerated : report.errors).push(text);
      });
      hls.on(Hls.Events.FRAG_CHANGED, (_, data) => {
        if (report.playedLevels.at(-1) !== data.frag.level) report.playedLevels.push(data.frag.level);
      });
      const until = (test) =>
        new Promise((resolve) => {
          const started = performance.now();
          const poll = () => {
            report.currentTime = video.currentTime;
            if (test() || report.errors.length || performance.now() - started > deadlineMs) resolve();
            else setTimeout(poll, 100);
          };
          poll();
        });
      hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
        report.levels = data.levels.map((l) => `${l.width}x${l.height}@${l.bitrate}`);
        video.play().catch((error) => report.errors.push(`play(): ${error}`));
      });
      hls.loadSource(masterUri);
      hls.attachMedia(video);
      await until(() => video.currentTime > 2 * segmentSeconds);
      if (report.errors.length || video.currentTime <= 2 * segmentSeconds) return report;
      const playing = report.playedLevels.at(-1) ?? hls.currentLevel;
      report.switchedTo = playing === 0 ? hls.levels.length - 1 : 0;
      report.timeAtSwitch = video.currentTime;
      hls.currentLevel = report.switchedTo;
      const playedOn = () =>
        report.playedLevels.at(-1) === report.switchedTo &&
        (video.currentTime > report.timeAtSwitch + afterSwitch || video.ended);
      await until(playedOn);
      report.ended = video.ended;
      report.passed = report.errors.length === 0 && report.levels.length > 1 && playedOn();
      return report;
    },
    { segmentSeconds, afterSwitch, deadlineMs, masterUri },
  );
  } finally {
    await tab.close();
  }
}
