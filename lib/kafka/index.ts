export {
  MessageProcessor, sleep, textHeaders,
  type DeadLetter, type FailureType, type KafkaHandler, type KafkaMessage, type MessageSchema, type Outcome,
  type ProcessorLog, type ProcessorOptions, type RawHeaders, type RawMessage
} from './processor.js'
export {
  compileRoomTemplate, parseBridgeRules, isTopicName, TemplateError, TOPIC_PATTERN,
  type BridgeRule, type BridgeRulesInput, type RoomTemplate
} from './template.js'
export { KafkaLifecycle, canConnect, type KafkaLifecycleOptions, type LifecycleLog } from './lifecycle.js'
