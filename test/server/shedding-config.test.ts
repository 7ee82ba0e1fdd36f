/**
 * The load-shedding, rate-limit and CORS variables: defaults, parsing, the
 * mapping to the app's options, and every bad value reported with its fix.
 */
import { getHeapStatistics } from 'node:v8'
import t from 'tap'
import { ConfigError, readConfig } from '../../server/config.js'
import { sheddingOptions } from '../../server/shedding.js'

function problemsOf (env: Record<string, string>): string[] {
  try {
    readConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

t.test('defaults: shedding on with generous thresholds, no rate limit, no CORS', async (t) => {
  const config = readConfig({})
  t.match(config, { maxEventLoopDelayMs: 1000, maxEventLoopUtilization: 0, retryAfterSeconds: 10, rateLimitMax: undefined, rateLimitWindowMs: 60_000, corsOrigins: [] })
  t.equal(config.maxHeapUsedMb, Math.floor(getHeapStatistics().heap_size_limit * 0.9 / 1024 / 1024), '90% of V8\'s heap limit')
  t.ok(config.maxHeapUsedMb > 0)
  t.equal(sheddingOptions(config, 'secret').rateLimit, undefined)
})

t.test('values are read and mapped to the app\'s options', async (t) => {
  const config = readConfig({
    MAX_EVENT_LOOP_DELAY_MS: '250',
    MAX_EVENT_LOOP_UTILIZATION: '0.98',
    MAX_HEAP_USED_MB: '512',
    RETRY_AFTER_S: '30',
    RATE_LIMIT_MAX: '100',
    RATE_LIMIT_WINDOW_MS: '1000',
    CORS_ORIGINS: 'https://app.example.test, http://localhost:5173',
    JWT_ISSUER: 'issuer',
    JWT_AUDIENCE: 'audience'
  })
  t.same(sheddingOptions(config, 'the-secret'), {
    maxEventLoopDelayMs: 250,
    maxEventLoopUtilization: 0.98,
    maxHeapUsedBytes: 512 * 1024 * 1024,
    retryAfterSeconds: 30,
    rateLimit: { max: 100, windowMs: 1000, token: { secret: 'the-secret', issuer: 'issuer', audience: 'audience' } },
    corsOrigins: ['https://app.example.test', 'http://localhost:5173']
  })
  t.match(readConfig({ MAX_EVENT_LOOP_DELAY_MS: '0', MAX_HEAP_USED_MB: '0', MAX_EVENT_LOOP_UTILIZATION: '1' }), { maxEventLoopDelayMs: 0, maxHeapUsedMb: 0, maxEventLoopUtilization: 1 }, '0 turns a threshold off')
  t.equal(readConfig({ MAX_EVENT_LOOP_UTILIZATION: '.5' }).maxEventLoopUtilization, 0.5)
})

t.test('bad values are reported together, each with what to change', async (t) => {
  t.same(problemsOf({
    MAX_EVENT_LOOP_DELAY_MS: '-1',
    MAX_EVENT_LOOP_UTILIZATION: '1.5',
    MAX_HEAP_USED_MB: '1e3',
    RETRY_AFTER_S: '0',
    RATE_LIMIT_MAX: '0',
    RATE_LIMIT_WINDOW_MS: '10',
    CORS_ORIGINS: 'https://app.example.test/, app.example.test,https://ok.example.test,https://a.example.test/path'
  }).sort(), [
    'MAX_EVENT_LOOP_UTILIZATION=1.5 must be a number from 0 to 1, e.g. 0.98 (0: off)',
    'CORS_ORIGINS must list exact origins such as https://app.example.com (no path, no trailing slash): "https://app.example.test/", "app.example.test", "https://a.example.test/path"',
    'MAX_EVENT_LOOP_DELAY_MS=-1 must be an integer from 0 to 60000',
    'MAX_HEAP_USED_MB=1e3 must be an integer from 0 to 1048576',
    'RETRY_AFTER_S=0 must be an integer from 1 to 3600',
    'RATE_LIMIT_MAX=0 must be an integer from 1 to 1000000',
    'RATE_LIMIT_WINDOW_MS=10 must be an integer from 1000 to 86400000'
  ].sort())
  t.match(problemsOf({ MAX_EVENT_LOOP_UTILIZATION: 'high' }), [/MAX_EVENT_LOOP_UTILIZATION=high must be a number from 0 to 1/])
  t.match(problemsOf({ CORS_ORIGINS: '*' }), [/CORS_ORIGINS must list exact origins/], 'no wildcard: only listed origins')
})
