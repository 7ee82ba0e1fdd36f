/**
 * Whether the standalone server traces, read from the standard OpenTelemetry variables.
 * No OpenTelemetry package is imported here: with tracing off, none is ever loaded.
 */

export interface TracingSettings {
  serviceName: string
}

export const DEFAULT_SERVICE_NAME = 'org-phone-numbers'

export class TracingConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`)
    this.name = 'TracingConfigError'
  }
}

/**
 * On with OTEL_TRACES_EXPORTER=otlp, or when it is unset and an OTLP endpoint is given
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); off otherwise, with
 * OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true. Spans go out as OTLP over HTTP with
 * JSON bodies, the one encoding bundled; the exporter itself reads the endpoint and headers.
 */
export function readTracingSettings (env: NodeJS.ProcessEnv = process.env): TracingSettings | undefined {
  const value = (name: string): string | undefined => {
    const raw = env[name]?.trim()
    return raw === undefined || raw === '' ? undefined : raw
  }
  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined
  const exporter = value('OTEL_TRACES_EXPORTER')
  const endpoint = value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? value('OTEL_EXPORTER_OTLP_ENDPOINT')
  if (exporter === 'none' || (exporter === undefined && endpoint === undefined)) return undefined

  const problems: string[] = []
  if (exporter !== undefined && exporter !== 'otlp') problems.push(`OTEL_TRACES_EXPORTER=${exporter} is not supported: use otlp (or none, or unset it)`)
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const protocol = value(name)
    if (protocol !== undefined && protocol !== 'http/json') problems.push(`${name}=${protocol} is not supported: the server sends OTLP as http/json (every OTLP HTTP receiver takes it); unset it or set http/json`)
  }
  if (endpoint !== undefined && !/^https?:\/\//.test(endpoint)) problems.push(`the OTLP endpoint ${endpoint} must be an http(s) URL, e.g. http://127.0.0.1:4318`)
  if (problems.length > 0) throw new TracingConfigError(problems)
  return { serviceName: value('OTEL_SERVICE_NAME') ?? DEFAULT_SERVICE_NAME }
}
