/**
 * Mixed assign/remove/list load where each worker (one keep-alive connection)
 * owns a disjoint set of users, so the expected state is deterministic: every
 * answered request is applied to the worker's model in order (200 applies,
 * 404 on remove must mean "not in the model", 409 changes nothing). Reads of
 * the worker's own users are checked against the model as they happen; the
 * final database state is compared with the model at the end.
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
  models: Map<string, Model>
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
  const models = new Map<string, Model>()
  const anomalies: string[] = []
  const started = performance.now()
  const url = `/api/organizations/${options.organizationId}/phone-numbers`
  const authorization = `Bearer ${options.token}`
  let counter = 0
  const stop = (): boolean => performance.now() - started > options.durationMs || (options.shouldStop?.() ?? false)
  for (const id of options.userIds) models.set(id, new Map())

  async function worker (index: number): Promise<void> {
    const mine = options.userIds.map((id, i) => ({ id, i })).filter(({ i }) => i % options.connections === index)
    if (mine.length === 0) return
    const agent: http.Agent | undefined = options.agentPerRequest === true ? undefined : newAgent()
    while (!stop()) {
      const user = mine[rand(mine.length)]!
      const model = models.get(user.id)!
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
          const answer = await call(options.base, 'POST', url, {
            agent: agent ?? false,
            headers,
            body: { targetUserId: user.id, provider, phoneNumber, isDefault, isInboundEnabled, ...(label === undefined ? {} : { label }) }
          })
          sample.status = answer.status
          sample.errorShape = isErrorBody(answer.body)
          if (answer.status === 200) applyAssign(model, provider, phoneNumber, isDefault, isInboundEnabled, label)
        } else if (op === 'remove') {
          const key = `${provider}|${phoneNumber}`
          const answer = await call(options.base, 'DELETE', url, { agent: agent ?? false, headers, body: { targetUserId: user.id, provider, phoneNumber } })
          sample.status = answer.status
          sample.errorShape = isErrorBody(answer.body)
          if (answer.status === 200) {
            if (!model.delete(key)) anomalies.push(`remove of ${key} on ${user.id} answered 200 but the model did not hold it`)
          } else if (answer.status === 404 && model.has(key)) {
            anomalies.push(`remove of ${key} on ${user.id} answered 404 but the model holds it (lost update)`)
          }
        } else {
          const wholeOrganization = Math.random() < 0.05
          const answer = await call(options.base, 'GET', wholeOrganization ? url : `${url}?targetUserId=${user.id}`, { agent: agent ?? false, headers })
          sample.status = answer.status
          sample.errorShape = isErrorBody(answer.body)
          if (answer.status === 200 && !wholeOrganization) {
            const listed = modelFromList((answer.body as { phoneNumbers?: unknown }).phoneNumbers)
            if (describe(listed) !== describe(model)) anomalies.push(`list of ${user.id} differs from the model: ${describe(listed)} vs ${describe(model)}`)
          }
        }
      } catch (error) {
        sample.failure = error instanceof RequestFailure ? error.code : String(error)
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
export async function compareWithModels (uri: string, models: Map<string, Model>): Promise<string[]> {
  return await withDb(uri, async (db) => {
    const differences: string[] = []
    const users = await db.collection('users').find({ _id: { $in: [...models.keys()].map((id) => new ObjectId(id)) } }).toArray()
    const stored = new Map(users.map((user) => [String(user._id), modelFromList(user['phoneNumbers'])]))
    for (const [id, model] of models) {
      const actual = stored.get(id) ?? new Map()
      if (describe(actual) !== describe(model)) differences.push(`${id}: stored ${describe(actual)}, expected ${describe(model)}`)
    }
    return differences
  })
}
