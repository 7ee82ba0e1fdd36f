/**
 * The "peer": the assign endpoint as many teams write it, with Express 5 and
 * Mongoose. Same contract as the plugin's assign before the ownership rules:
 * SUPERADMIN bearer token (HS256, exp required), the same body rules,
 * organization check, user of that organization, upsert by (provider,
 * phoneNumber), other defaults of the provider cleared, same answer. The data
 * is loaded as documents, modified in memory and saved; a lost race (Mongoose
 * VersionError) is retried like the store's compare-and-swap. It does not
 * enforce the ownership rules (one organization and one inbound route per
 * number): no holder query, no claim, so it does less database work than ours.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import express, { type NextFunction, type Request, type Response } from 'express'
import mongoose, { Schema, type Types } from 'mongoose'
import { PROVIDERS as PROVIDER_LIST } from '../plugins/phone-numbers/index.js'
import type { CommandTracer } from './tracing.js'

interface Assignment {
  provider: string
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label?: string | undefined
  createdAt: Date
  updatedAt: Date
}

interface UserDocument {
  organizationId: Types.ObjectId
  name?: string
  role?: string
  phoneNumbers: Types.DocumentArray<Assignment>
}

const PROVIDERS = new Set<string>(PROVIDER_LIST)
const OBJECT_ID = /^[0-9a-fA-F]{24}$/
const E164 = /^\+[1-9]\d{1,14}$/
const MAX_VERSION_RETRIES = 10

class HttpError extends Error {
  constructor (readonly status: number, readonly title: string, message: string) {
    super(message)
  }
}

function base64UrlJson (part: string): unknown {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
}

/** HS256 bearer token check, as a typical hand-written middleware does it. */
export function verifyHs256 (token: string, secret: string, now = Date.now()): Record<string, unknown> {
  const [header, payload, signature] = token.split('.')
  if (header === undefined || payload === undefined || signature === undefined) throw new HttpError(401, 'Unauthorized', 'Malformed token')
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest()
  const given = Buffer.from(signature, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new HttpError(401, 'Unauthorized', 'Bad signature')
  const { alg } = base64UrlJson(header) as { alg?: unknown }
  if (alg !== 'HS256') throw new HttpError(401, 'Unauthorized', 'Unexpected algorithm')
  const claims = base64UrlJson(payload) as Record<string, unknown>
  if (typeof claims['exp'] !== 'number' || claims['exp'] * 1000 <= now) throw new HttpError(401, 'Unauthorized', 'Token expired')
  return claims
}

function validateBody (body: unknown): { targetUserId: string, provider: string, phoneNumber: string, isDefault: boolean, isInboundEnabled: boolean, label: string | undefined } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'Validation error', 'body must be object')
  const given = body as Record<string, unknown>
  const { targetUserId, provider, phoneNumber, isDefault, isInboundEnabled, label } = given
  if (typeof targetUserId !== 'string' || !OBJECT_ID.test(targetUserId)) throw new HttpError(400, 'Validation error', 'body/targetUserId is invalid')
  if (typeof provider !== 'string' || !PROVIDERS.has(provider)) throw new HttpError(400, 'Validation error', 'body/provider is invalid')
  if (typeof phoneNumber !== 'string' || !E164.test(phoneNumber)) throw new HttpError(400, 'Validation error', 'body/phoneNumber is invalid')
  if (isDefault !== undefined && typeof isDefault !== 'boolean') throw new HttpError(400, 'Validation error', 'body/isDefault must be boolean')
  if (isInboundEnabled !== undefined && typeof isInboundEnabled !== 'boolean') throw new HttpError(400, 'Validation error', 'body/isInboundEnabled must be boolean')
  if (label !== undefined && (typeof label !== 'string' || label.length > 64)) throw new HttpError(400, 'Validation error', 'body/label is invalid')
  return { targetUserId, provider, phoneNumber, isDefault: isDefault ?? true, isInboundEnabled: isInboundEnabled ?? true, label }
}

export interface PeerApp {
  handler: express.Express
  close: () => Promise<void>
}

export async function createPeerApp (uri: string, jwtSecret: string, tracer: CommandTracer): Promise<PeerApp> {
  const connection = mongoose.createConnection(uri, { monitorCommands: true, autoIndex: false, autoCreate: false })
  await connection.asPromise()
  tracer.watch(connection.getClient())

  const assignmentSchema = new Schema<Assignment>({
    provider: { type: String, required: true },
    phoneNumber: { type: String, required: true },
    isDefault: { type: Boolean, required: true },
    isInboundEnabled: { type: Boolean, required: true },
    label: String,
    createdAt: Date,
    updatedAt: Date
  }, { _id: false })
  const userSchema = new Schema<UserDocument>({
    organizationId: { type: Schema.Types.ObjectId, required: true },
    name: String,
    role: String,
    phoneNumbers: [assignmentSchema]
  }, { collection: 'users' })
  const organizationSchema = new Schema({ name: String }, { collection: 'organizations' })
  const User = connection.model<UserDocument>('User', userSchema)
  const Organization = connection.model('Organization', organizationSchema)

  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')
  app.use(express.json({ limit: '16kb' }))
  // The route below (and all it awaits) runs inside the request's trace.
  app.use((request: Request, _response: Response, next: NextFunction) => tracer.enter(request, next))

  function requireSuperAdmin (request: Request, _response: Response, next: NextFunction): void {
    const header = request.headers.authorization
    if (header === undefined || !header.startsWith('Bearer ')) throw new HttpError(401, 'Unauthorized', 'No Authorization was found in request.headers')
    const claims = verifyHs256(header.slice(7), jwtSecret)
    if (claims['role'] !== 'SUPERADMIN') throw new HttpError(403, 'Forbidden', 'This operation requires the SUPERADMIN role')
    next()
  }

  app.post('/api/organizations/:organizationId/phone-numbers', requireSuperAdmin, async (request: Request<{ organizationId: string }>, response: Response) => {
    const { organizationId } = request.params
    if (!OBJECT_ID.test(organizationId)) throw new HttpError(400, 'Validation error', 'params/organizationId is invalid')
    const input = validateBody(request.body)

    const organization = await Organization.findById(organizationId).select('_id').lean()
    if (organization === null) throw new HttpError(404, 'Organization not found', 'No organization exists with the provided id')

    for (let attempt = 1; ; attempt++) {
      const user = await User.findOne({ _id: input.targetUserId, organizationId })
      if (user === null) throw new HttpError(404, 'Target user not found in organization', 'The target user does not exist or does not belong to this organization')
      const now = new Date()
      let entry = user.phoneNumbers.find((item) => item.provider === input.provider && item.phoneNumber === input.phoneNumber)
      if (input.isDefault) {
        for (const other of user.phoneNumbers) {
          if (other !== entry && other.provider === input.provider && other.isDefault) {
            other.isDefault = false
            other.updatedAt = now
          }
        }
      }
      if (entry === undefined) {
        user.phoneNumbers.push({ provider: input.provider, phoneNumber: input.phoneNumber, isDefault: input.isDefault, isInboundEnabled: input.isInboundEnabled, label: input.label, createdAt: now, updatedAt: now })
        entry = user.phoneNumbers[user.phoneNumbers.length - 1]!
      } else {
        entry.isDefault = input.isDefault
        entry.isInboundEnabled = input.isInboundEnabled
        entry.label = input.label
        entry.updatedAt = now
      }
      try {
        await user.save()
      } catch (error) {
        if (error instanceof mongoose.Error.VersionError && attempt < MAX_VERSION_RETRIES) continue
        throw error
      }
      response.json({
        success: true,
        message: `${input.provider} phone number assigned`,
        assignment: {
          userId: input.targetUserId,
          provider: entry.provider,
          phoneNumber: entry.phoneNumber,
          isDefault: entry.isDefault,
          isInboundEnabled: entry.isInboundEnabled,
          ...(entry.label === undefined ? {} : { label: entry.label }),
          createdAt: entry.createdAt.toISOString(),
          updatedAt: entry.updatedAt.toISOString()
        }
      })
      return
    }
  })

  app.use((error: unknown, _request: Request, response: Response, _next: NextFunction) => {
    if (error instanceof HttpError) {
      response.status(error.status).json({ error: error.title, details: error.message })
      return
    }
    const status = (error as { status?: unknown }).status
    if (typeof status === 'number' && status >= 400 && status < 500) {
      response.status(status).json({ error: 'Validation error', details: (error as Error).message })
      return
    }
    response.status(500).json({ error: 'Internal server error', details: 'The request could not be completed' })
  })

  return { handler: app, close: async () => { await connection.close() } }
}
