/**
 * What is measured. Each scenario is one server under test and one kind of
 * request; pairs are compared in the report (ours against baseline and peer,
 * each rejection and the inbound-route lookup through the plugin against a
 * bare route).
 */
import type { Request as AutocannonRequest } from 'autocannon'
import type { ServerKind } from './servers.js'
import { LISTING_FILTER, LISTING_PAGE_LIMIT, assignBody, inboundRoutePath, listingPath, lookupNumbers, phoneNumbersPath, type ListingSize, type Workload } from './workload.js'

export const SCENARIO_NAMES = [
  'ours', 'ours-metrics', 'ours-tracing', 'baseline', 'peer',
  'ours-401', 'bare-401', 'ours-403', 'bare-403', 'ours-400', 'bare-400',
  'ours-lookup', 'ours-lookup-cached', 'bare-lookup',
  'list-first-1k', 'list-middle-1k', 'list-filtered-1k',
  'list-first-50k', 'list-middle-50k', 'list-filtered-50k'
] as const
export type ScenarioName = typeof SCENARIO_NAMES[number]

export type RejectionKind = '401' | '403' | '400'
export const REJECTION_KINDS: readonly RejectionKind[] = ['401', '403', '400']

/** What a scenario's requests do. */
export type RequestKind = 'assign' | 'lookup' | 'list' | RejectionKind

/** Which listing page: the first, one from the middle of the walk (cycling over real cursors), the first filtered one. */
export type ListingPageKind = 'first' | 'middle' | 'filtered'
export const LISTING_PAGE_KINDS: readonly ListingPageKind[] = ['first', 'middle', 'filtered']

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
  /**
   * Listing scenarios: the organization read (its size) and the page. Each
   * size has a server process of its own (the same plugin server), so each
   * size's RSS is its own.
   */
  listing?: { size: ListingSize, page: ListingPageKind } | undefined
}

function listingScenario (page: ListingPageKind, size: ListingSize): Scenario {
  const name = `list-${page}-${size}` as ScenarioName
  // "ratio to baseline" of a 50k row: its throughput over the same page at 1k.
  return { name, server: 'ours', request: 'list', expectedStatus: 200, resetData: false, baseline: `list-${page}-1k` as ScenarioName, peer: undefined, listing: { size, page } }
}

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  ours: { name: 'ours', server: 'ours', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'baseline', peer: 'peer' },
  baseline: { name: 'baseline', server: 'baseline', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'baseline', peer: 'peer' },
  peer: { name: 'peer', server: 'peer', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'baseline', peer: 'peer' },
  // "ratio to baseline": metrics on over metrics off.
  'ours-metrics': { name: 'ours-metrics', server: 'ours-metrics', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'ours', peer: 'peer' },
  // "ratio to baseline": tracing on (OTLP to the bench's discarding receiver) over tracing off.
  'ours-tracing': { name: 'ours-tracing', server: 'ours-tracing', request: 'assign', expectedStatus: 200, resetData: true, baseline: 'ours', peer: 'peer' },
  'ours-401': { name: 'ours-401', server: 'ours', request: '401', expectedStatus: 401, resetData: false, baseline: 'bare-401', peer: undefined },
  'bare-401': { name: 'bare-401', server: 'bare', request: '401', expectedStatus: 401, resetData: false, baseline: 'bare-401', peer: undefined },
  'ours-403': { name: 'ours-403', server: 'ours', request: '403', expectedStatus: 403, resetData: false, baseline: 'bare-403', peer: undefined },
  'bare-403': { name: 'bare-403', server: 'bare', request: '403', expectedStatus: 403, resetData: false, baseline: 'bare-403', peer: undefined },
  'ours-400': { name: 'ours-400', server: 'ours', request: '400', expectedStatus: 400, resetData: false, baseline: 'bare-400', peer: undefined },
  'bare-400': { name: 'bare-400', server: 'bare', request: '400', expectedStatus: 400, resetData: false, baseline: 'bare-400', peer: undefined },
  'ours-lookup': { name: 'ours-lookup', server: 'ours', request: 'lookup', expectedStatus: 200, resetData: true, baseline: 'bare-lookup', peer: undefined },
  // The lookups cycle over every seeded number (users x 4): --users 2500 makes a hot set of 10,000.
  'ours-lookup-cached': { name: 'ours-lookup-cached', server: 'ours-cached', request: 'lookup', expectedStatus: 200, resetData: true, baseline: 'bare-lookup', peer: undefined },
  'bare-lookup': { name: 'bare-lookup', server: 'bare', request: 'lookup', expectedStatus: 200, resetData: true, baseline: 'bare-lookup', peer: undefined },
  'list-first-1k': listingScenario('first', '1k'),
  'list-middle-1k': listingScenario('middle', '1k'),
  'list-filtered-1k': listingScenario('filtered', '1k'),
  'list-first-50k': listingScenario('first', '50k'),
  'list-middle-50k': listingScenario('middle', '50k'),
  'list-filtered-50k': listingScenario('filtered', '50k')
}

/** The listing scenario of a page and size. */
export function listingScenarioName (page: ListingPageKind, size: ListingSize): ScenarioName {
  return `list-${page}-${size}` as ScenarioName
}

/** The server child a scenario runs on: one per server kind, and one plugin server per listing size. */
export function serverKey (scenario: Scenario): string {
  return scenario.listing === undefined ? scenario.server : `${scenario.server}-list-${scenario.listing.size}`
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

/** What the listing requests of one size read: the organization and real cursors from the middle of a walk. */
export interface ListingTarget {
  organizationId: string
  middleCursors: readonly string[]
}

/** The path of a listing page request (`cursor` only for the middle page). */
export function listingPagePath (page: ListingPageKind, organizationId: string, cursor?: string): string {
  switch (page) {
    case 'first': return listingPath(organizationId, { limit: LISTING_PAGE_LIMIT })
    case 'filtered': return listingPath(organizationId, { ...LISTING_FILTER, limit: LISTING_PAGE_LIMIT })
    case 'middle':
      if (cursor === undefined) throw new Error('a middle page needs a cursor')
      return listingPath(organizationId, { limit: LISTING_PAGE_LIMIT, cursor })
  }
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
 * one user); middle listing pages cycle over the size's middle cursors.
 */
export function scenarioRequests (scenario: Scenario, workload: Workload, tokens: Tokens, listings: Partial<Record<ListingSize, ListingTarget>> = {}): AutocannonRequest[] {
  const kind = scenario.request
  if (isRejectionKind(kind)) {
    return [rejectionRequest(kind, workload, tokens, scenario.server === 'bare' ? barePrefix(kind) : '')]
  }
  let n = 0
  // The bare routes ignore the token, but get the same bytes to parse.
  const authorization = `Bearer ${tokens.superAdmin}`
  if (kind === 'list') {
    const { size, page } = scenario.listing!
    const target = listings[size]
    if (target === undefined) throw new Error(`${scenario.name}: the ${size} listing was not prepared`)
    if (page !== 'middle') return [{ method: 'GET', path: listingPagePath(page, target.organizationId), headers: { authorization } }]
    const cursors = target.middleCursors
    if (cursors.length === 0) throw new Error(`${scenario.name}: no middle cursors`)
    return [{
      method: 'GET',
      headers: { authorization },
      setupRequest: (request) => ({ ...request, path: listingPagePath('middle', target.organizationId, cursors[n++ % cursors.length]) })
    }]
  }
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
