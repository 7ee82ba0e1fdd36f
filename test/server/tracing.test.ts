/**
 * OpenTelemetry in the standalone server, black-box: the server process as `npm start` runs it,
 * exporting to a real OTLP/HTTP receiver on 127.0.0.1. A request carrying a W3C traceparent
 * continues the caller's trace: a server span with the route pattern, and the MongoDB
 * commands as spans below it. With the variables unset, no OpenTelemetry module is loaded.
 */
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { mintToken } from '../../tools/tokens.js'
import { DEFAULT_SERVICE_NAME, readTracingSettings, TracingConfigError } from '../../server/tracing/settings.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { OTLP_SPAN_KIND, startOtlpReceiver, type ReceivedSpan } from './helper-otlp-receiver.js'
import { startStandalone } from './helper-server.js'
import { seedFixture, TEST_SECRET } from '../helper.js'

t.setTimeout(120_000)

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const PRELOAD = pathToFileURL(join(ROOT, 'server', 'tracing', 'preload.ts')).href

t.test('tracing is on only when the standard variables ask for it', async (t) => {
  t.equal(readTracingSettings({}), undefined, 'nothing set: off')
  t.equal(readTracingSettings({ OTEL_SERVICE_NAME: 'api' }), undefined, 'a service name alone does not turn it on')
  t.equal(readTracingSettings({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), undefined, 'exporter none: off')
  t.equal(readTracingSettings({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }), undefined, 'OTEL_SDK_DISABLED: off')
  t.same(readTracingSettings({ OTEL_TRACES_EXPORTER: 'otlp' }), { serviceName: DEFAULT_SERVICE_NAME }, 'otlp: on, default service name')
  t.same(readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SERVICE_NAME: 'phones' }), { serviceName: 'phones' }, 'an endpoint: on')
  t.same(readTracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), { serviceName: DEFAULT_SERVICE_NAME })
  t.throws(() => readTracingSettings({ OTEL_TRACES_EXPORTER: 'zipkin' }), TracingConfigError)
  t.throws(() => readTracingSettings({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported/)
  t.throws(() => readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: '127.0.0.1:4318' }), /must be an http\(s\) URL/)
})

/** The OpenTelemetry modules loaded by the preload in a fresh node process with these variables. */
async function modulesLoadedByPreload (env: Record<string, string>): Promise<string[]> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  for (const name of Object.keys(childEnv)) if (name.startsWith('OTEL_') && !(name in env)) delete childEnv[name]
  const script = "console.log(JSON.stringify(Object.keys(require('node:module')._cache).filter((file) => /@opentelemetry|@fastify[\\\\/]otel/.test(file))))"
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--import', PRELOAD, '--eval', script], { cwd: ROOT, env: childEnv })
  return JSON.parse(stdout) as string[]
}

t.test('with the variables unset the preload loads no OpenTelemetry module', async (t) => {
  t.same(await modulesLoadedByPreload({}), [], 'none loaded')
  // The control: the same probe sees them when tracing is on (nothing listens there; nothing is sent).
  const loaded = await modulesLoadedByPreload({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' })
  t.ok(loaded.some((file) => file.includes('instrumentation-mongodb')), 'on: the MongoDB instrumentation is loaded')
  t.ok(loaded.some((file) => /@fastify[\\/]otel/.test(file)), 'on: @fastify/otel is loaded')
})

t.test('a configuration the exporter cannot serve stops the server with the reason', async (t) => {
  const server = startStandalone({ OTEL_TRACES_EXPORTER: 'jaeger', MONGODB_URI: 'mongodb://127.0.0.1:1/x', JWT_SECRET: TEST_SECRET })
  await t.rejects(server, /server exited with 1: Invalid configuration:\n {2}- OTEL_TRACES_EXPORTER=jaeger is not supported/)
})

/** The span and its ancestors, nearest first, as far as the received spans go. */
function ancestorsOf (span: ReceivedSpan, spans: readonly ReceivedSpan[]): ReceivedSpan[] {
  const chain: ReceivedSpan[] = []
  let parent = spans.find((candidate) => candidate.spanId === span.parentSpanId)
  while (parent !== undefined && !chain.includes(parent)) {
    chain.push(parent)
    const spanId = parent.parentSpanId
    parent = spans.find((candidate) => candidate.spanId === spanId)
  }
  return chain
}

t.test('a request with a traceparent: a server span with its route, MongoDB command spans below it', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const { db, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const server = await startStandalone({
    MONGODB_URI: uriForDatabase(dbName),
    JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'warn',
    // No load shedding: this test is about the spans, and a busy machine could answer 503.
    MAX_EVENT_LOOP_DELAY_MS: '0',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_SERVICE_NAME: 'phone-numbers-under-test'
  })
  t.teardown(() => { server.child.kill('SIGKILL') })

  const callerTraceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const callerSpanId = '00f067aa0ba902b7'
  const token = await mintToken(TEST_SECRET, { sub: fixture.adminId, role: 'SUPERADMIN' })
  const assigned = await fetch(`${server.base}/api/organizations/${fixture.organizationId}/phone-numbers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
    body: JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550141' })
  })
  t.equal(assigned.status, 200)
  await assigned.arrayBuffer()

  // The graceful shutdown flushes the batched spans before the process exits.
  const closed = once(server.child, 'close')
  server.child.kill('SIGTERM')
  const [code] = await closed
  t.equal(code, 0, 'clean exit on SIGTERM')
  t.same(receiver.rejected, [], 'every export was a POST /v1/traces with JSON')

  const traced = receiver.spans.filter((span) => span.traceId === callerTraceId)
  const serverSpans = traced.filter((span) => span.kind === OTLP_SPAN_KIND.SERVER)
  t.equal(serverSpans.length, 1, 'one server span in the caller\'s trace', { names: traced.map((span) => span.name) })
  const serverSpan = serverSpans[0]!
  t.equal(serverSpan.parentSpanId, callerSpanId, 'its parent is the caller\'s span')
  t.equal(serverSpan.serviceName, 'phone-numbers-under-test', 'OTEL_SERVICE_NAME names the service')
  t.match(serverSpan, {
    name: 'POST /api/organizations/:organizationId/phone-numbers',
    attributes: {
      'http.route': '/api/organizations/:organizationId/phone-numbers',
      'http.request.method': 'POST',
      'http.response.status_code': 200
    }
  })

  const commandSpans = traced.filter((span) => span.attributes['db.system.name'] === 'mongodb' || span.attributes['db.system'] === 'mongodb')
  t.ok(commandSpans.length >= 2, 'MongoDB command spans in the same trace', { commands: commandSpans.map((span) => span.name) })
  t.ok(commandSpans.some((span) => span.attributes['db.collection.name'] === 'users' && span.attributes['db.operation.name'] === 'update'), 'the users update is among them', { commands: commandSpans.map((span) => span.name) })
  for (const span of commandSpans) {
    t.equal(span.kind, OTLP_SPAN_KIND.CLIENT, `${span.name}: a client span`)
    t.ok(ancestorsOf(span, traced).includes(serverSpan), `${span.name}: below the server span`)
  }
  // Commands outside any request (index builds at start, the event sweep) start traces of their own.
  t.notOk(receiver.spans.some((span) => span.traceId !== callerTraceId && span.parentSpanId === serverSpan.spanId), 'no child of the server span in another trace')
})
