import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { RbacUserPool } from '../../src';

const stack = () => new Stack(new App(), 'Users', { env: { account: '111111111111', region: 'eu-west-2' } });

describe('RbacUserPool defaults', () => {
  const s = stack();
  const users = new RbacUserPool(s, 'Users');
  const t = Template.fromStack(s);

  test('email sign-in, no self sign-up, 12-character all-class passwords, optional TOTP MFA, ESSENTIALS, email recovery', () => {
    t.hasResourceProperties('AWS::Cognito::UserPool', {
      UserPoolName: 'skafu-users-development',
      UsernameAttributes: ['email'],
      AutoVerifiedAttributes: ['email'],
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      Policies: {
        PasswordPolicy: {
          MinimumLength: 12,
          RequireLowercase: true,
          RequireUppercase: true,
          RequireNumbers: true,
          RequireSymbols: true,
          TemporaryPasswordValidityDays: 3,
        },
      },
      MfaConfiguration: 'OPTIONAL',
      EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
      UserPoolTier: 'ESSENTIALS',
      AccountRecoverySetting: { RecoveryMechanisms: [{ Name: 'verified_email', Priority: 1 }] },
    });
    t.hasResource('AWS::Cognito::UserPool', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  test('groups Admin (1), Developer (2), Viewer (3)', () => {
    for (const [name, precedence] of [['Admin', 1], ['Developer', 2], ['Viewer', 3]] as const) {
      t.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: name, Precedence: precedence });
    }
    expect(users.groupNames).toEqual(['Admin', 'Developer', 'Viewer']);
  });

  test('a public web client: no secret, SRP + refresh, OAuth off, token validity 1 h / 1 h / 30 d', () => {
    t.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: false,
      ExplicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
      AllowedOAuthFlowsUserPoolClient: false,
      AccessTokenValidity: 60,
      IdTokenValidity: 60,
      RefreshTokenValidity: 43200,
      TokenValidityUnits: { AccessToken: 'minutes', IdToken: 'minutes', RefreshToken: 'minutes' },
      PreventUserExistenceErrors: 'ENABLED',
    });
    const [client] = Object.values(t.findResources('AWS::Cognito::UserPoolClient'));
    expect(client.Properties.CallbackURLs).toBeUndefined();
    expect(s.resolve(users.issuerUrl)).toEqual({ 'Fn::Join': ['', ['https://cognito-idp.eu-west-2.amazonaws.com/', { Ref: expect.stringMatching(/UserPool/) }]] });
  });
});

test('OAuth code flow with PKCE when callback URLs are given; everything configurable', () => {
  const s = stack();
  const users = new RbacUserPool(s, 'Users', {
    environment: 'production',
    callbackUrls: ['https://app.skafu.dev/callback', 'http://localhost:3000/callback'],
    mfa: cognito.Mfa.REQUIRED,
    featurePlan: cognito.FeaturePlan.PLUS,
    accessTokenValidity: Duration.minutes(15),
    refreshTokenValidity: Duration.days(7),
    removalPolicy: RemovalPolicy.DESTROY,
    groups: [{ name: 'Owner', precedence: 0 }],
  });
  users.addGroup({ name: 'Auditor', precedence: 5, description: 'reads audit logs' });
  const t = Template.fromStack(s);
  t.hasResourceProperties('AWS::Cognito::UserPoolClient', {
    AllowedOAuthFlows: ['code'],
    AllowedOAuthFlowsUserPoolClient: true,
    AllowedOAuthScopes: ['openid', 'email', 'profile'],
    CallbackURLs: ['https://app.skafu.dev/callback', 'http://localhost:3000/callback'],
    LogoutURLs: ['https://app.skafu.dev/callback', 'http://localhost:3000/callback'],
    AccessTokenValidity: 15,
    RefreshTokenValidity: 10080,
  });
  t.hasResourceProperties('AWS::Cognito::UserPool', { UserPoolName: 'skafu-users-production', MfaConfiguration: 'ON', UserPoolTier: 'PLUS' });
  t.hasResource('AWS::Cognito::UserPool', { DeletionPolicy: 'Delete' });
  t.resourceCountIs('AWS::Cognito::UserPoolGroup', 2);
  t.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'Auditor', Precedence: 5, Description: 'reads audit logs' });
  expect(users.groupNames).toEqual(['Owner', 'Auditor']);
  // PLUS chosen: no COG8 acknowledgement is carried.
  expect(JSON.stringify(t.toJSON())).not.toContain('AwsSolutions-COG8');
});

test('production preset: access and ID tokens valid 10 minutes, so a revoked user keeps access minutes, not an hour', () => {
  const s = stack();
  new RbacUserPool(s, 'Users', { environment: 'production' });
  Template.fromStack(s).hasResourceProperties('AWS::Cognito::UserPoolClient', { AccessTokenValidity: 10, IdTokenValidity: 10, RefreshTokenValidity: 43200 });
  const staging = stack();
  new RbacUserPool(staging, 'Users', { environment: 'staging' });
  Template.fromStack(staging).hasResourceProperties('AWS::Cognito::UserPoolClient', { AccessTokenValidity: 60, IdTokenValidity: 60 });
});

test('MFA off drops the second factor', () => {
  const s = stack();
  new RbacUserPool(s, 'Users', { mfa: cognito.Mfa.OFF });
  const [pool] = Object.values(Template.fromStack(s).findResources('AWS::Cognito::UserPool'));
  expect(pool.Properties.MfaConfiguration).toBe('OFF');
  expect(pool.Properties.EnabledMfas).toBeUndefined();
});

test.each<[string, () => void, RegExp]>([
  ['weak password length', () => new RbacUserPool(stack(), 'U', { passwordPolicy: { minLength: 6 } }), /'passwordPolicy.minLength' must be 8-99/],
  ['logout URLs without callbacks', () => new RbacUserPool(stack(), 'U', { logoutUrls: ['https://x.dev'] }), /'logoutUrls' needs 'callbackUrls'/],
  ['plain http callback', () => new RbacUserPool(stack(), 'U', { callbackUrls: ['http://app.skafu.dev/cb'] }), /must use https/],
  ['refresh shorter than access', () => new RbacUserPool(stack(), 'U', { accessTokenValidity: Duration.hours(2), refreshTokenValidity: Duration.hours(1) }), /must be longer than 'accessTokenValidity'/],
  ['duplicate groups', () => new RbacUserPool(stack(), 'U', { groups: [{ name: 'A', precedence: 1 }, { name: 'A', precedence: 2 }] }), /group 'A' is declared twice/],
  ['no groups', () => new RbacUserPool(stack(), 'U', { groups: [] }), /'groups' is empty/],
  ['addGroup twice', () => new RbacUserPool(stack(), 'U').addGroup({ name: 'Admin', precedence: 9 }), /group 'Admin' already exists/],
  ['group name with a space', () => new RbacUserPool(stack(), 'U').addGroup({ name: 'Power User', precedence: 9 }), /without spaces/],
])('bad props throw at synth: %s', (_n, build, message) => {
  expect(build).toThrow(message);
});
