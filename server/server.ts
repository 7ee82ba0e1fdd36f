/**
 * The standalone server: read the configuration, find or start the database,
 * build the app, listen, and shut down gracefully on SIGINT/SIGTERM.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import app, { appOptions, serverOptions, type RuntimeSettings } from './app.js'
import { ConfigError, readConfig, type ServerConfig } from './config.js'
import { developmentSecret, superAdminToken, DEMO_ORGANIZATION_ID, DEMO_USER_ID } from './development.js'
import { readServerArguments, startDevelopmentDatabase, type DevelopmentDatabase } from './development-database.js'
import { docsUrl } from './docs.js'
import { shutdownTracing } from './tracing/shutdown.js'

async function buildServer (config: ServerConfig, runtime: RuntimeSettings): Promise<FastifyInstance> {
  const server = Fastify(serverOptions(config)).withTypeProvider<TypeBoxTypeProvider>()
  await server.register(app, appOptions(config, runtime))
  return server
}

/**
 * Waits for pino's pending writes: its stream writes asynchronously, and
 * process.exit() would otherwise flush the last lines ahead of earlier ones.
 */
async function flushLogs (log: FastifyBaseLogger): Promise<void> {
  const flush = (log as FastifyBaseLogger & { flush?: (done: (error?: Error) => void) => void }).flush
  if (typeof flush !== 'function') return
  await new Promise<void>((resolve) => { flush.call(log, () => resolve()) })
}

/** Closes the server (in-flight requests finish, new ones get 503), bounded by `timeoutMs`. */
async function closeWithin (server: FastifyInstance, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs) })
  const closed = server.close().then(() => true)
  const done = await Promise.race([closed, timedOut])
  clearTimeout(timer)
  return done
}

async function main (): Promise<void> {
  let config: ServerConfig
  let fresh: boolean
  try {
    config = readConfig()
    fresh = readServerArguments(process.argv.slice(2)).fresh || config.devDatabaseFresh
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message)
      process.exit(1)
    }
    throw error
  }

  let database: DevelopmentDatabase | undefined
  if (config.developmentMode) {
    database = await startDevelopmentDatabase({ dataDir: config.devDataDir, fresh }, (line) => console.error(`[embedded database] ${line}`))
  }
  const mongodbUri = config.mongodbUri ?? database!.uri
  const jwtSecret = config.jwtSecret ?? await developmentSecret()

  const server = await buildServer(config, { mongodbUri, jwtSecret, seedDemoData: database !== undefined })
  let shuttingDown = false
  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) return
    shuttingDown = true
    server.log.info({ signal }, 'shutting down: finishing in-flight requests')
    const clean = await closeWithin(server, config.shutdownTimeoutMs)
    if (!clean) server.log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'in-flight requests still running at the shutdown deadline')
    await database?.stop()
    // The last spans (this request's and the shutdown's) are still in the exporter's batch.
    await shutdownTracing()
    server.log.info('stopped')
    await flushLogs(server.log)
    process.exit(clean ? 0 : 1)
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    shutdown(signal).catch((error: unknown) => {
      server.log.fatal({ err: error }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  try {
    await server.listen({ port: config.port, host: config.host })
  } catch (error) {
    server.log.fatal({ err: error }, 'could not start')
    await server.close()
    await database?.stop()
    process.exit(1)
  }

  // The URL only: its query string could carry a token, and the secret is never logged.
  if (config.webhook !== undefined) server.log.info({ webhook: new URL(config.webhook.url).origin }, 'delivering change events to the webhook')
  const docsPage = config.serveDocs ? docsUrl(config.host, (server.server.address() as { port: number }).port) : undefined
  // Development mode shows the page in its banner instead.
  if (docsPage !== undefined && database === undefined) server.log.info({ url: docsPage }, 'API reference page')
  const docsLine = docsPage === undefined ? [] : [`API reference page: ${docsPage}`]
  if (database !== undefined) {
    const address = `http://${config.host}:${(server.server.address() as { port: number }).port}`
    server.log.info({ backend: database.backend, serverVersion: database.serverVersion, mongodbUri: database.uri, dataFile: database.dataFile }, 'embedded development database')
    const keptLine = `Data kept in ${database.dataFile} (DEV_DATA_DIR); \`npm start -- --fresh\` starts empty.`
    if (config.jwtSecret !== undefined) {
      // Never print a token signed with a secret the operator supplied: it may be valid elsewhere.
      console.error(`\nDevelopment mode (DEVELOPMENT_MODE=true): embedded ${database.backend} ${database.serverVersion} at ${database.uri}, demo organization ${DEMO_ORGANIZATION_ID}. No token is printed: sign one with your own JWT_SECRET.\n${keptLine}${docsLine.map((line) => `\n${line}`).join('')}\n`)
      return
    }
    const token = await superAdminToken(jwtSecret)
    console.error([
      '',
      `Development mode: embedded ${database.backend} ${database.serverVersion} at ${database.uri}`,
      keptLine,
      ...docsLine,
      `Demo organization ${DEMO_ORGANIZATION_ID}, demo user ${DEMO_USER_ID}. A SUPERADMIN token (1 h; \`npm run token\` mints another):`,
      '',
      `  export TOKEN=${token}`,
      `  curl -s -X POST ${address}/api/organizations/${DEMO_ORGANIZATION_ID}/phone-numbers \\`,
      '    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
      `    -d '{"targetUserId":"${DEMO_USER_ID}","provider":"twilio","phoneNumber":"+14165550102","label":"Main Outbound"}'`,
      ''
    ].join('\n'))
  }
}

await main()
