/** Every command the extension contributes (category "Claude Gateway"). */
export enum CommandId {
  SwitchProvider = 'claudeGateway.switchProvider',
  SetProviderSecret = 'claudeGateway.setProviderSecret',
}
