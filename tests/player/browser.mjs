// The system's Chromium (Debian's package; $CHROMIUM elsewhere), headless,
// for the player and web page tests. The flags keep it off the (closed)
// network and out of a sandbox it cannot have as root in CI, and let
// muted video play without a gesture.

import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}
