export { webhookUrl, firstEntry, type WebhookUrlInput } from './url.js'
export { verifyTwilioSignature, type ValidateRequest, type TwilioParams } from './signature.js'
export { escapeXml, messagingResponse, TWIML_CONTENT_TYPE } from './twiml.js'
export {
  E164, isE164, InboundSmsSchema, SmsStatusSchema, InboundSmsFields, StatusCallbackFields,
  type InboundSms, type SmsStatus, type MessageStatus
} from './schemas.js'
export {
  createSender, SmsSendError,
  type SmsClient, type SmsMessage, type SentSms, type SenderOptions, type HttpClientOption, type TwilioModule,
  type CreateMessageParams
} from './client.js'
