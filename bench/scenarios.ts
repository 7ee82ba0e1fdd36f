/**
 * What is measured. Each scenario is one server under test and one kind of
 * request; pairs are compared in the report (ours against baseline and peer,
 * each rejection through the plugin against the bare route).
 */
import type { Request as AutocannonRequest } from 'autocannon'
import type { ServerKind } from './servers.js'
import { assignBody, phoneNumbersPath, type Workload } from './workload.js'

export const SCENARIO_NAMES = [
  'ours', 'baseline', 'peer',
  'ours-401', 'bare-401', 'ours-403', 'bare-403', 'ours-400', 'bare-400'
] as const
export type ScenarioName = typeof SCENARIO_NAMES[number]

export type RejectionKind = '401' | '403' | '400'
export const REJECTION_KINDS: readonly RejectionKind[] = ['401', '403', '400']

export interface Scenario {
  name: ScenarioName
  server: ServerKind
  /** The only status code this scenario may answer with. */
  expectedStatus: number
  /** Writes to the users: reset the data before each run. */
  writes: boolean
  /** Scenario to divide by for "ratio to baseline" (the bare route for rejections). */
  baseline: ScenarioName | undefined
  /** Scenario to divide by for "ratio to peer". */
  peer: ScenarioName | undefined
}

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  ours: { name: 'ours', server: 'ours', expectedStatus: 200, writes: true, baseline: 'baseline', peer: 'peer' },
  baseline: { name: 'baseline', server: 'baseline', expectedStatus: 200, writes: true, baseline: 'baseline', peer: 'peer' },
  peer: { name: 'peer', server: 'peer', expectedStatus: 200, writes: true, baseline: 'baseline', peer: 'peer' },
  'ours-401': { name: 'ours-401', server: 'ours', expectedStatus: 401, writes: false, baseline: 'bare-401', peer: undefined },
  'bare-401': { name: 'bare-401', server: 'bare', expectedStatus: 401, writes: false, baseline: 'bare-401', peer: undefined },
  'ours-403': { name: 'ours-403', server: 'ours', expectedStatus: 403, writes: false, baseline: 'bare-403', peer: undefined },
  'bare-403': { name: 'bare-403', server: 'bare', expectedStatus: 403, writes: false, baseline: 'bare-403', peer: undefined },
  'ours-400': { name: 'ours-400', server: 'ours', expectedStatus: 400, writes: false, baseline: 'bare-400', peer: undefined },
  'bare-400': { name: 'bare-400', server: 'bare', expectedStatus: 400, writes: false, baseline: 'bare-400', peer: undefined }
}

export function isScenarioName (value: string): value is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(value)
}

export interface Tokens {
  superAdmin: string
  agent: string
}

/** Prefix of the bare server's route for a rejection kind. */
export function barePrefix (kind: RejectionKind): string {
  return `/r${kind}`
}

/** One rejected request: no token (401), a non-admin token (403), an invalid phone number (400). */
export function rejectionRequest (kind: RejectionKind, workload: Workload, tokens: Tokens, prefix = ''): AutocannonRequest {
  const body = JSON.stringify({ ...assignBody(workload, 0), ...(kind === '400' ? { phoneNumber: '555-0102' } : {}) })
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (kind === '403') headers['authorization'] = `Bearer ${tokens.agent}`
  if (kind === '400') headers['authorization'] = `Bearer ${tokens.superAdmin}`
  return { method: 'POST', path: phoneNumbersPath(workload.organizationId, prefix), headers, body }
}

/** The autocannon requests of a scenario; assign bodies change on every request. */
export function scenarioRequests (scenario: Scenario, workload: Workload, tokens: Tokens): AutocannonRequest[] {
  const kind = scenario.name.split('-')[1] as RejectionKind | undefined
  if (kind !== undefined) {
    return [rejectionRequest(kind, workload, tokens, scenario.server === 'bare' ? barePrefix(kind) : '')]
  }
  let n = 0
  // The baseline ignores the token, but gets the same bytes to parse.
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${tokens.superAdmin}` }
  return [{
    method: 'POST',
    path: phoneNumbersPath(workload.organizationId),
    headers,
    setupRequest: (request) => ({ ...request, body: JSON.stringify(assignBody(workload, n++)) })
  }]
}
