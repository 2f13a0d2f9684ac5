// bench/ingest.py's durable peer: a Probot app that verifies each delivery's signature with
// Probot's own webhooks and awaits one INSERT of it into PostgreSQL before answering.
// Run by the bench only: node app.mjs <fd> <dsn> <secret>. Listens on the socket the bench
// bound (inherited as file descriptor <fd>), creates its table, then serves.
import { createServer } from "node:http";
import pg from "pg";
import { Probot, createNodeMiddleware } from "probot";

const [fd, dsn, secret] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: dsn, max: 10 });
await pool.query(
  "CREATE TABLE IF NOT EXISTS peer_deliveries (id bigserial PRIMARY KEY, guid text UNIQUE NOT NULL," +
    " event text NOT NULL, payload text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())");

const app = (probot) => {
  probot.onAny(async (context) => {
    await pool.query(
      "INSERT INTO peer_deliveries (guid, event, payload) VALUES ($1, $2, $3) ON CONFLICT (guid) DO NOTHING",
      [context.id, context.name, JSON.stringify(context.payload)]);
  });
};
const probot = new Probot({ githubToken: "bench-unused", secret, logLevel: "warn" });
const middleware = await createNodeMiddleware(app, { probot, webhooksPath: "/webhooks/github" });
const server = createServer((req, res) => {
  middleware(req, res, () => { res.writeHead(404).end(); });
});
server.keepAliveTimeout = 75_000;
server.listen({ fd: Number(fd) });
