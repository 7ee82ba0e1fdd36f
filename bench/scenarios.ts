/**
 * What is measured. Each scenario is one server under test and one kind of
 * request; pairs are compared in the report (ours against baseline and peer,
 * each rejection and the inbound-route lookup through the plugin against a
 * bare route).
 */
import type { Request as AutocannonRequest } from 'autocannon'
import type { ServerKind } from './servers.js'
import { assignBody, inboundRoutePath, lookupNumbers, phoneNumbersPath, type Workload } from './workload.js'

export const SCENARIO_NAMES = [
  'ours', 'baseline', 'peer',
  'ours-401', 'bare-401', 'ours-403', 'bare-403', 'ours-400', 'bare-400',
  'ours-lookup', 'bare-lookup'
] as const
export type ScenarioName = typeof SCENARIO_NAMES[number]

export type RejectionKind = '401' | '403' | '400'
export const REJECTION_KINDS: readonly RejectionKind[] = ['401', '403', '400']

/** What a scenario's requests do. */
export type RequestKind = 'assign' | 'lookup' | RejectionKind

export interface Scenario {
  name: ScenarioName
  server: ServerKind
  request: RequestKind
  /** The only status code this scenario may answer with. */
  expectedStatus: number
  /**
   * Put the users and the number claims back to the seeded state before each
   * run: the assigns write them, the lookups read the seeded numbers.
   */
  resetData: boolean
  /** Scenario to divide by for "ratio to baseline" (the bare route for rejections and lookups). */
  baseline: ScenarioName | undefined
  /** Scenario to divide by for "ratio to peer". */
  peer: ScenarioName | undefined
}

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  ours: { name: 'ours', server: 'ours', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'baseline', peer: 'peer' },
  baseline: { name: 'baseline', server: 'baseline', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'baseline', peer: 'peer' },
  peer: { name: 'peer', server: 'peer', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'baseline', peer: 'peer' },
  'ours-401': { name: 'ours-401', server: 'ours', request: '401', expectedStatus: 401, resetData: false, baseline: 'bare-401', peer: undefined },
  'bare-401': { name: 'bare-401', server: 'bare', request: '401', expectedStatus: 401, resetData: false, baseline: 'bare-401', peer: undefined },
  'ours-403': { name: 'ours-403', server: 'ours', request: '403', expectedStatus: 403, resetData: false, baseline: 'bare-403', peer: undefined },
  'bare-403': { name: 'bare-403', server: 'bare', request: '403', expectedStatus: 403, resetData: false, baseline: 'bare-403', peer: undefined },
  'ours-400': { name: 'ours-400', server: 'ours', request: '400', expectedStatus: 400, resetData: false, baseline: 'bare-400', peer: undefined },
  'bare-400': { name: 'bare-400', server: 'bare', request: '400', expectedStatus: 400, resetData: false, baseline: 'bare-400', peer: undefined },
  'ours-lookup': { name: 'ours-lookup', server: 'ours', request: 'lookup', expectedStatus: 200, resetData: true, baseline: 'bare-lookup', peer: undefined },
  'bare-lookup': { name: 'bare-lookup', server: 'bare', request: 'lookup', expectedStatus: 200, resetData: true, baseline: 'bare-lookup', peer: undefined }
}

export function isScenarioName (value: string): value is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(value)
}

export function isRejectionKind (value: string): value is RejectionKind {
  return (REJECTION_KINDS as readonly string[]).includes(value)
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

/**
 * The autocannon requests of a scenario. Assign bodies change on every
 * request; lookups cycle over the seeded numbers (every one routes to exactly
 * one user).
 */
export function scenarioRequests (scenario: Scenario, workload: Workload, tokens: Tokens): AutocannonRequest[] {
  const kind = scenario.request
  if (isRejectionKind(kind)) {
    return [rejectionRequest(kind, workload, tokens, scenario.server === 'bare' ? barePrefix(kind) : '')]
  }
  let n = 0
  // The bare routes ignore the token, but get the same bytes to parse.
  const authorization = `Bearer ${tokens.superAdmin}`
  if (kind === 'lookup') {
    const numbers = lookupNumbers(workload)
    return [{
      method: 'GET',
      headers: { authorization },
      setupRequest: (request) => ({ ...request, path: inboundRoutePath(numbers[n++ % numbers.length]!) })
    }]
  }
  return [{
    method: 'POST',
    path: phoneNumbersPath(workload.organizationId),
    headers: { 'content-type': 'application/json', authorization },
    setupRequest: (request) => ({ ...request, body: JSON.stringify(assignBody(workload, n++)) })
  }]
}
