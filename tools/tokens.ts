/**
 * The one token signer of the project (development tokens, `npm run token`,
 * tests, reliability tools): the same @fastify/jwt the server verifies with,
 * on a throwaway Fastify instance.
 */
import jwt from '@fastify/jwt'
import Fastify from 'fastify'

export interface TokenSigner {
  /** Signs an HS256 token; `expiresIn` defaults to 1 h, `key` overrides the signer's secret. */
  sign: (claims: Record<string, unknown>, options?: { expiresIn?: string | number, key?: string }) => string
  close: () => Promise<void>
}

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
