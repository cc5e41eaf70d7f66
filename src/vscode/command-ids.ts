/** Every command the extension contributes (category "Claude Gateway"). */
export enum CommandId {
  SwitchProvider = 'claudeGateway.switchProvider',
  AddProfile = 'claudeGateway.addProfile',
  SetProviderSecret = 'claudeGateway.setProviderSecret',
  TestConnection = 'claudeGateway.testConnection',
  ShowUsage = 'claudeGateway.showUsage',
  OpenAuditLog = 'claudeGateway.openAuditLog',
  VerifyAuditLog = 'claudeGateway.verifyAuditLog',
  CopyEnvironment = 'claudeGateway.copyEnvironment',
  RestartGateway = 'claudeGateway.restartGateway',
  ConfigureClaudeCodeExtension = 'claudeGateway.configureClaudeCodeExtension',
}
