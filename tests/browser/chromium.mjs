// The Chromium command-line flags of the browser tests (driver.mjs, remote.mjs):
// headless, a fake microphone granted without asking, WebRTC on loopback, and
// nothing that talks to the network on its own.
export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--disable-gpu",
  "--no-first-run",
];
