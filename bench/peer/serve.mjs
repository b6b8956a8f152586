// The seed's server (npm `attio-mcp`, the TypeScript attio-mcp-server) over streamable
// HTTP as its Smithery build serves it: @smithery/sdk's createStatefulServer, a session
// and a server instance per client. Bound to 127.0.0.1 (the Smithery build listens on
// every interface).
//
//     PEER_MODULES=DIR PORT=3100 ATTIO_API_KEY=... ATTIO_BASE_URL=http://127.0.0.1:N/v2 \
//         node bench/peer/serve.mjs
//
// DIR is where bench/peer.py installed the two packages (its node_modules folder).
import { pathToFileURL } from "node:url";
import path from "node:path";

const modules = process.env.PEER_MODULES;
const load = (file) => import(pathToFileURL(path.join(modules, file)).href);

// By file: attio-mcp's package exports map `import` to TypeScript sources it does not ship.
const seed = await load("attio-mcp/dist/smithery.js");
const { createStatefulServer } = await load("@smithery/sdk/dist/index.js");

const { app } = createStatefulServer(seed.default, {
  schema: seed.configSchema,
  logLevel: "warn",
});
const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => {
  console.log(`PEER http://127.0.0.1:${server.address().port}/mcp`);
});
