export { parseForm, type TwilioParams } from './form.js'
export { webhookUrl, firstEntry, normalizePublicUrl, type WebhookUrlInput } from './url.js'
export { verifyTwilioSignature } from './signature.js'
export { escapeXml, messagingResponse, TWIML_CONTENT_TYPE } from './twiml.js'
export {
  E164, isE164, InboundSmsSchema, SmsStatusSchema, InboundSmsFields, StatusCallbackFields, describeIssues,
  type InboundSms, type SmsStatus, type MessageStatus
} from './schemas.js'
export {
  createSender, SmsSendError,
  type SmsClient, type SmsMessage, type SentSms, type SenderOptions, type HttpClientOption, type TwilioModule,
  type CreateMessageParams
} from './client.js'
