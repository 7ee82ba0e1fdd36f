/**
 * Mixed assign/remove/list load where each worker (one keep-alive connection)
 * owns a disjoint set of users, so the expected state is deterministic: every
 * answered request is applied to the worker's model in order (200 applies,
 * 404 on remove must mean "not in the model", 409 changes nothing). Reads of
 * the worker's own users are checked against the model as they happen; the
 * final database state is compared with the model at the end.
 *
 * The ownership rules hold inside the model too: a user's numbers are its
 * own, so no number is in another organization (a 409 "Phone number belongs
 * to another organization" is an anomaly), and the workload assigns one
 * number under several providers, so rule 2 (one inbound route per number)
 * answers 409 "Inbound route held by another assignment" exactly when the
 * model holds the number inbound under another provider; a 409 without such
 * a route, or an inbound 200 despite one, is an anomaly. A 409 writes nothing.
 *
 * A write answered 5xx, or not answered at all, may still have been stored
 * (the database can apply it after the driver gave up, e.g. when it is killed
 * mid-write): its outcome is unknown, so the model keeps both possible states
 * until the next answer that tells them apart (a list, a remove's 200 or 404).
 */
import type http from 'node:http'
import { ObjectId } from 'mongodb'
import { PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import { withDb } from './consistency.js'
import { RequestFailure, call, isErrorBody, newAgent } from './http-client.js'

interface Entry { isDefault: boolean, isInboundEnabled: boolean, label?: string }
type Model = Map<string, Entry> // key: `${provider}|${phoneNumber}`

export interface Sample {
  op: 'assign' | 'remove' | 'list'
  /** Sent as x-request-id: the server logs it as reqId. */
  id: string
  start: number
  end: number
  status: number
  /** Set when no HTTP answer came (connection refused, reset, timeout). */
  failure?: string
  errorShape: boolean
  /** The `error` title of an error answer. */
  error?: string
}

export interface LoadOptions {
  base: string
  token: string
  organizationId: string
  userIds: readonly string[]
  connections: number
  /** Stops when this resolves true or after durationMs. */
  durationMs: number
  shouldStop?: () => boolean
  /** Pause between a worker's requests, ms (0: back to back). */
  thinkMs?: number
  /** Fresh connection per request (no keep-alive): for shutdown tests. */
  agentPerRequest?: boolean
  onSample?: (sample: Sample) => void
}

export interface LoadResult {
  samples: Sample[]
  /** Per user, the states the stored list may be in (one, unless a write's outcome is unknown). */
  models: Map<string, Model[]>
  /** Read-your-writes mismatches and impossible answers seen during the run. */
  anomalies: string[]
}

const rand = (n: number): number => Math.floor(Math.random() * n)

function phoneOf (userIndex: number, slot: number): string {
  return `+1555${String(userIndex).padStart(5, '0')}${slot}`
}

function applyAssign (model: Model, provider: Provider, phoneNumber: string, isDefault: boolean, isInboundEnabled: boolean, label: string | undefined): void {
  if (isDefault) {
    for (const [key, entry] of model) if (key.startsWith(`${provider}|`) && entry.isDefault) entry.isDefault = false
  }
  model.set(`${provider}|${phoneNumber}`, { isDefault, isInboundEnabled, ...(label === undefined ? {} : { label }) })
}

/** Whether the model routes `phoneNumber` inbound under another provider than `provider` (rule 2 then refuses an inbound assign). */
function routesElsewhere (model: Model, provider: Provider, phoneNumber: string): boolean {
  return [...model].some(([key, entry]) => entry.isInboundEnabled && key !== `${provider}|${phoneNumber}` && key.endsWith(`|${phoneNumber}`))
}

export const OTHER_ORGANIZATION = 'Phone number belongs to another organization'
export const INBOUND_HELD = 'Inbound route held by another assignment'

function copyOf (model: Model): Model {
  return new Map([...model].map(([key, entry]) => [key, { ...entry }]))
}

/** The distinct states among `models` (by content). */
function distinct (models: Model[]): Model[] {
  const seen = new Map<string, Model>()
  for (const model of models) seen.set(describe(model), model)
  return [...seen.values()]
}

function describe (model: Model): string {
  return JSON.stringify([...model.entries()].sort(([a], [b]) => a.localeCompare(b)))
}

function modelFromList (list: unknown): Model {
  const model: Model = new Map()
  for (const raw of Array.isArray(list) ? list as Array<Record<string, unknown>> : []) {
    const label = raw['label']
    model.set(`${String(raw['provider'])}|${String(raw['phoneNumber'])}`, {
      isDefault: raw['isDefault'] === true,
      isInboundEnabled: raw['isInboundEnabled'] === true,
      ...(typeof label === 'string' ? { label } : {})
    })
  }
  return model
}

export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  const samples: Sample[] = []
  const models = new Map<string, Model[]>()
  const anomalies: string[] = []
  const started = performance.now()
  const url = `/api/organizations/${options.organizationId}/phone-numbers`
  const authorization = `Bearer ${options.token}`
  let counter = 0
  const stop = (): boolean => performance.now() - started > options.durationMs || (options.shouldStop?.() ?? false)
  for (const id of options.userIds) models.set(id, [new Map()])

  async function worker (index: number): Promise<void> {
    const mine = options.userIds.map((id, i) => ({ id, i })).filter(({ i }) => i % options.connections === index)
    if (mine.length === 0) return
    const agent: http.Agent | undefined = options.agentPerRequest === true ? undefined : newAgent()
    while (!stop()) {
      const user = mine[rand(mine.length)]!
      const candidates = models.get(user.id)!
      let write: ((model: Model) => void) | undefined
      /** A write answered without a verdict: keep both the unchanged and the written states. */
      const widen = (): void => {
        const written = candidates.map((model) => { const next = copyOf(model); write?.(next); return next })
        models.set(user.id, distinct([...candidates, ...written]))
      }
      const roll = Math.random()
      const provider = PROVIDERS[rand(PROVIDERS.length)]!
      const phoneNumber = phoneOf(user.i, rand(4))
      const op: Sample['op'] = roll < 0.45 ? 'assign' : roll < 0.7 ? 'remove' : 'list'
      const start = performance.now()
      const id = `load-${index}-${counter++}`
      const headers = { authorization, 'x-request-id': id }
      const sample: Sample = { op, id, start, end: start, status: 0, errorShape: false }
      try {
        if (op === 'assign') {
          const isDefault = Math.random() < 0.5
          const isInboundEnabled = Math.random() < 0.7
          const label = Math.random() < 0.5 ? `label ${rand(3)}` : undefined
          write = (model) => applyAssign(model, provider, phoneNumber, isDefault, isInboundEnabled, label)
          const answer = await call(options.base, 'POST', url, {
            agent: agent ?? false,
            headers,
            body: { targetUserId: user.id, provider, phoneNumber, isDefault, isInboundEnabled, ...(label === undefined ? {} : { label }) }
          })
          sample.status = answer.status
          sample.errorShape = isErrorBody(answer.body)
          if (sample.errorShape) sample.error = (answer.body as { error: string }).error
          const key = `${provider}|${phoneNumber}`
          if (answer.status === 200) {
            let next = candidates
            if (isInboundEnabled) {
              const allowed = candidates.filter((model) => !routesElsewhere(model, provider, phoneNumber))
              if (allowed.length === 0) anomalies.push(`inbound assign of ${key} on ${user.id} answered 200 while the model routes ${phoneNumber} under another provider (rule 2)`)
              else next = allowed
            }
            for (const model of next) write(model)
            models.set(user.id, distinct(next))
          } else if (answer.status === 409 && sample.error === INBOUND_HELD) {
            const routed = candidates.filter((model) => routesElsewhere(model, provider, phoneNumber))
            if (!isInboundEnabled || routed.length === 0) anomalies.push(`assign of ${key} (isInboundEnabled ${String(isInboundEnabled)}) on ${user.id} answered 409 ${INBOUND_HELD} but the model routes ${phoneNumber} nowhere else`)
            else models.set(user.id, routed)
          } else if (answer.status === 409 && sample.error === OTHER_ORGANIZATION) {
            anomalies.push(`assign of ${key} on ${user.id} answered 409 ${OTHER_ORGANIZATION}, but no other organization is given this user's numbers`)
          } else if (answer.status >= 500) {
            widen()
          }
        } else if (op === 'remove') {
          const key = `${provider}|${phoneNumber}`
          write = (model) => { model.delete(key) }
          const answer = await call(options.base, 'DELETE', url, { agent: agent ?? false, headers, body: { targetUserId: user.id, provider, phoneNumber } })
          sample.status = answer.status
          sample.errorShape = isErrorBody(answer.body)
          if (sample.errorShape) sample.error = (answer.body as { error: string }).error
          if (answer.status === 200) {
            const holding = candidates.filter((model) => model.has(key))
            if (holding.length === 0) anomalies.push(`remove of ${key} on ${user.id} answered 200 but the model did not hold it`)
            else models.set(user.id, distinct(holding.map((model) => { model.delete(key); return model })))
          } else if (answer.status === 404) {
            const without = candidates.filter((model) => !model.has(key))
            if (without.length === 0) anomalies.push(`remove of ${key} on ${user.id} answered 404 but the model holds it (lost update)`)
            else models.set(user.id, without)
          } else if (answer.status >= 500) {
            widen()
          }
        } else {
          const wholeOrganization = Math.random() < 0.05
          const answer = await call(options.base, 'GET', wholeOrganization ? url : `${url}?targetUserId=${user.id}&limit=1000`, { agent: agent ?? false, headers })
          sample.status = answer.status
          sample.errorShape = isErrorBody(answer.body)
          if (sample.errorShape) sample.error = (answer.body as { error: string }).error
          if (answer.status === 200 && !wholeOrganization) {
            const listed = modelFromList((answer.body as { phoneNumbers?: unknown }).phoneNumbers)
            const matching = candidates.filter((model) => describe(model) === describe(listed))
            if (matching.length === 0) anomalies.push(`list of ${user.id} differs from the model: ${describe(listed)} vs ${candidates.map(describe).join(' or ')}`)
            else models.set(user.id, matching.slice(0, 1))
          }
        }
      } catch (error) {
        sample.failure = error instanceof RequestFailure ? error.code : String(error)
        // No answer at all: a write may or may not have been stored; the next list tells.
        if (write !== undefined) widen()
      }
      sample.end = performance.now()
      samples.push(sample)
      options.onSample?.(sample)
      if ((options.thinkMs ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, options.thinkMs))
    }
    agent?.destroy()
  }

  await Promise.all(Array.from({ length: options.connections }, async (_, index) => { await worker(index) }))
  return { samples, models, anomalies }
}

/** Compares every user's stored array with its model; returns the users that differ. */
export async function compareWithModels (uri: string, models: Map<string, Model[]>): Promise<string[]> {
  return await withDb(uri, async (db) => {
    const differences: string[] = []
    const users = await db.collection('users').find({ _id: { $in: [...models.keys()].map((id) => new ObjectId(id)) } }).toArray()
    const stored = new Map(users.map((user) => [String(user._id), modelFromList(user['phoneNumbers'])]))
    for (const [id, candidates] of models) {
      const actual = stored.get(id) ?? new Map()
      if (!candidates.some((model) => describe(actual) === describe(model))) differences.push(`${id}: stored ${describe(actual)}, expected ${candidates.map(describe).join(' or ')}`)
    }
    return differences
  })
}
