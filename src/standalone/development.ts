/**
 * Conveniences for the embedded development database only: a persistent
 * development JWT secret, SUPERADMIN tokens, and demo data matching the
 * contract's examples so the README's curl commands work at once.
 */
import jwt from '@fastify/jwt'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ObjectId, type Db } from 'mongodb'

const SECRET_FILE = join(process.cwd(), '.cache', 'dev-jwt-secret')

export const DEMO_ORGANIZATION_ID = '5f7b1c2e8a1d4e0012c3b4a0'
export const DEMO_USER_ID = '5f7b1c2e8a1d4e0012c3b4a6'
/** A second agent of the demo organization, to transfer a number to. */
export const DEMO_SECOND_USER_ID = '5f7b1c2e8a1d4e0012c3b4a7'
export const DEMO_ADMIN_ID = '5f7b1c2e8a1d4e0012c3b4a1'

/** Reads the development secret, creating it (git-ignored, mode 600) on first use. */
export async function developmentSecret (): Promise<string> {
  try {
    return (await readFile(SECRET_FILE, 'utf8')).trim()
  } catch {
    const secret = randomBytes(32).toString('hex')
    await mkdir(join(process.cwd(), '.cache'), { recursive: true })
    await writeFile(SECRET_FILE, `${secret}\n`, { mode: 0o600 })
    return secret
  }
}

export interface TokenSigner {
  /** Signs an HS256 token; `expiresIn` defaults to 1 h, `key` overrides the signer's secret. */
  sign: (claims: Record<string, unknown>, options?: { expiresIn?: string | number, key?: string }) => string
  close: () => Promise<void>
}

/**
 * The one token signer of the project (development tokens, `npm run token`,
 * tests, reliability tools): the same @fastify/jwt the server verifies with,
 * on a throwaway Fastify instance.
 */
export async function createTokenSigner (secret: string): Promise<TokenSigner> {
  const signer = Fastify({ logger: false })
  await signer.register(jwt, { secret, sign: { algorithm: 'HS256', expiresIn: '1h' } })
  await signer.ready()
  return {
    sign: (claims, options = {}) => signer.jwt.sign(claims, {
      expiresIn: options.expiresIn ?? '1h',
      ...(options.key === undefined ? {} : { key: options.key })
    }),
    close: async () => { await signer.close() }
  }
}

/** Signs one token and disposes of the signer. */
export async function mintToken (secret: string, claims: Record<string, unknown>, expiresIn = '1h'): Promise<string> {
  const signer = await createTokenSigner(secret)
  try {
    return signer.sign(claims, { expiresIn })
  } finally {
    await signer.close()
  }
}

export function superAdminToken (secret: string, expiresIn?: string): Promise<string> {
  return mintToken(secret, { sub: DEMO_ADMIN_ID, role: 'SUPERADMIN' }, expiresIn)
}

/** Inserts the demo organization and users unless they exist. */
export async function seedDemoData (db: Db, usersCollection: string, organizationsCollection: string): Promise<void> {
  const organizationId = new ObjectId(DEMO_ORGANIZATION_ID)
  await db.collection(organizationsCollection).updateOne(
    { _id: organizationId },
    { $setOnInsert: { name: 'Demo organization' } },
    { upsert: true }
  )
  const demoUsers = [[DEMO_USER_ID, 'Demo agent', 'AGENT'], [DEMO_SECOND_USER_ID, 'Second demo agent', 'AGENT'], [DEMO_ADMIN_ID, 'Demo super admin', 'SUPERADMIN']] as const
  for (const [id, name, role] of demoUsers) {
    await db.collection(usersCollection).updateOne(
      { _id: new ObjectId(id) },
      { $setOnInsert: { name, role, organizationId } },
      { upsert: true }
    )
  }
}
