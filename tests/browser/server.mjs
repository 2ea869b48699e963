// The built xray-http on a free port of loopback, for the browser tests: started with `env`
// beside the process's own (never as a Lambda), resolved with its base URL once it listens.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.XRAY_HTTP_BIN ?? path.join(root, "target/debug/xray-http");

export async function startServer(extraEnv = {}) {
  const env = { ...process.env, PORT: "0", RUST_LOG: "warn", ...extraEnv };
  delete env.AWS_LAMBDA_RUNTIME_API;
  const server = spawn(bin, [], { env, stdio: ["ignore", "pipe", "inherit"] });
  const first = await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.once("exit", (code) => reject(new Error(`xray-http exited ${code}`)));
    createInterface({ input: server.stdout }).once("line", resolve);
  });
  return { server, base: first.match(/http:\/\/[^/ ]+\//)[0] };
}
