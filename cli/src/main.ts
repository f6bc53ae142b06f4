import WebSocket from "ws";
import { runCli } from "./cli.js";
import { COMMANDS } from "./commands/index.js";

// A reader that stops early (outpost logs | head) is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

const code = await runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  webSocket: (url, headers) => new WebSocket(url, { headers }),
  onSignal(handler) {
    let count = 0;
    const listener = () => {
      // A second Ctrl-C does not wait for the first one's cleanup.
      if (++count > 1) process.exit(130);
      try {
        handler();
      } catch {
        process.exit(130);
      }
    };
    process.on("SIGINT", listener);
    return () => void process.off("SIGINT", listener);
  },
}, COMMANDS);
// Sockets or timers left open must not keep a finished command alive.
process.stdout.write("", () => process.exit(code));
