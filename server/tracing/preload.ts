/**
 * `node --import tsx --import ./server/tracing/preload.ts server/server.ts`
 * (what `npm start` runs). The MongoDB instrumentation patches the driver's files as they are
 * first required, so it must be registered before anything imports `mongodb`: an ES module's
 * static imports all load before its body runs, so server.ts cannot do it itself.
 * With the OTEL variables unset this module imports nothing more.
 */
import { readTracingSettings, TracingConfigError, type TracingSettings } from './settings.js'
import { onTracingShutdown } from './shutdown.js'

let settings: TracingSettings | undefined
try {
  settings = readTracingSettings()
} catch (error) {
  if (!(error instanceof TracingConfigError)) throw error
  console.error(error.message)
  process.exit(1)
}

if (settings !== undefined) {
  const { startTracing } = await import('./start.js')
  onTracingShutdown(startTracing(settings))
}
