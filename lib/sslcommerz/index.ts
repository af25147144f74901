export { md5Hex, expectedSign, checkSign, signedNames, type SignCheck } from './hash.js'
export { toHundredths, sameAmount, formatAmount } from './amount.js'
export { SslcommerzApi, SANDBOX_URL, LIVE_URL, PATHS, isApiError, type SslcommerzApiOptions, type SslcommerzApiError } from './api.js'
export {
  verifyNotification, notificationKey, formValues,
  type VerifiedNotification, type NotificationVerifierOptions, type LoadOrder, type OrderAmount
} from './notification.js'
export { publishSslcommerzEvent, sslcommerzEvent, SSLCOMMERZ_ROOM, EVENT_FIELDS } from './publish.js'
export { sessionParams, type SessionDefaults } from './session.js'
export * from './schemas.js'
