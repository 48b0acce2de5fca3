import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../internal/nag';

/** A user group and its precedence (lower wins when a user is in several). */
export interface RbacGroup {
  /** The group's name (case-sensitive), as routes name it in `allowedGroups`. */
  readonly name: string;
  /** Lower wins when a user is in several groups (Cognito's role precedence). */
  readonly precedence: number;
  /**
   * A description shown in Cognito.
   * @default - none
   */
  readonly description?: string;
}

/** Properties of an RbacUserPool. */
export interface RbacUserPoolProps {
  /**
   * The environment, used in default names.
   * @default 'development'
   */
  readonly environment?: string;
  /**
   * The user pool's name.
   * @default `skafu-users-<environment>`
   */
  readonly userPoolName?: string;
  /**
   * Let anyone sign up.
   * @default false
   */
  readonly selfSignUpEnabled?: boolean;
  /**
   * The password policy (minimum length 8 to 99).
   * @default - 12 characters with lower case, upper case, digits and symbols; temporary passwords valid 3 days
   */
  readonly passwordPolicy?: cognito.PasswordPolicy;
  /**
   * Multi-factor authentication, with TOTP (authenticator apps) as the second factor.
   * @default cognito.Mfa.OPTIONAL
   */
  readonly mfa?: cognito.Mfa;
  /**
   * The Cognito feature plan. No paid plan is forced on anyone: PLUS (threat protection) is opt-in.
   * @default cognito.FeaturePlan.ESSENTIALS
   */
  readonly featurePlan?: cognito.FeaturePlan;
  /**
   * How long an access token is valid (5 minutes to 1 day). A token stays valid until it expires even after the
   * user is disabled, removed from a group or signed out (API Gateway verifies it offline), so this, plus the API's
   * authorizer cache TTL, is the window in which such a user keeps access; clients refresh silently with the
   * refresh token.
   * @default by environment: production 10 minutes, otherwise 1 hour
   */
  readonly accessTokenValidity?: Duration;
  /**
   * How long an ID token is valid (5 minutes to 1 day).
   * @default by environment: production 10 minutes, otherwise 1 hour
   */
  readonly idTokenValidity?: Duration;
  /**
   * How long a refresh token is valid (1 hour to 10 years); revoking it (sign-out) also revokes the access tokens
   * it issued, at Cognito (not in tokens already verified offline).
   * @default Duration.days(30)
   */
  readonly refreshTokenValidity?: Duration;
  /**
   * The groups. Replaces the defaults; add more later with `addGroup`.
   * @default Admin (1), Developer (2), Viewer (3)
   */
  readonly groups?: RbacGroup[];
  /**
   * OAuth callback URLs of the web client. When given, the client gets the authorization code flow with PKCE
   * (public client, no secret); without them, OAuth is off and the client uses SRP.
   * @default - no OAuth
   */
  readonly callbackUrls?: string[];
  /**
   * OAuth sign-out URLs of the web client (needs `callbackUrls`).
   * @default - the callback URLs
   */
  readonly logoutUrls?: string[];
  /**
   * What happens to the user pool (and its users) when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** Access and ID token validity by environment (default: 1 hour). */
const TOKEN_VALIDITY_BY_ENVIRONMENT: Record<string, Duration> = {
  production: Duration.minutes(10),
};

/** The default groups of the platform. */
export const DEFAULT_RBAC_GROUPS: RbacGroup[] = [
  { name: 'Admin', precedence: 1, description: 'Administrative users with full access' },
  { name: 'Developer', precedence: 2, description: 'Developers: write access to projects and observability' },
  { name: 'Viewer', precedence: 3, description: 'Read-only users' },
];

/**
 * The Cognito user pool of the platform: email sign-in, no self sign-up, a strong password policy, MFA with TOTP,
 * account recovery by email, token validity as props, groups with precedence (Admin, Developer, Viewer), and a
 * public web client (SRP and refresh; OAuth code flow with PKCE when callback URLs are given).
 */
export class RbacUserPool extends Construct {
  /** The Cognito user pool. */
  public readonly userPool: cognito.UserPool;
  /** The public web client (no secret). */
  public readonly userPoolClient: cognito.UserPoolClient;
  /** The user pool's id. */
  public readonly userPoolId: string;
  /** The user pool's ARN. */
  public readonly userPoolArn: string;
  /** The web client's id (the `client_id` of its access tokens). */
  public readonly userPoolClientId: string;
  /** The token issuer: `https://cognito-idp.<region>.amazonaws.com/<userPoolId>`. */
  public readonly issuerUrl: string;
  /** The groups, by name. */
  public readonly groups: Record<string, cognito.CfnUserPoolGroup> = {};

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (RbacUserPoolProps)
   */
  constructor(scope: Construct, id: string, props: RbacUserPoolProps = {}) {
    super(scope, id);
    validate(this.node.path, props);
    const environment = props.environment ?? 'development';
    const featurePlan = props.featurePlan ?? cognito.FeaturePlan.ESSENTIALS;
    const mfa = props.mfa ?? cognito.Mfa.OPTIONAL;

    this.userPool = new cognito.UserPool(this, 'UserPool', {
      userPoolName: props.userPoolName ?? `skafu-users-${environment}`,
      selfSignUpEnabled: props.selfSignUpEnabled ?? false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      standardAttributes: { email: { required: true, mutable: true } },
      passwordPolicy: props.passwordPolicy ?? {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa,
      mfaSecondFactor: mfa === cognito.Mfa.OFF ? undefined : { otp: true, sms: false },
      featurePlan,
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.userPoolId = this.userPool.userPoolId;
    this.userPoolArn = this.userPool.userPoolArn;
    this.issuerUrl = `https://cognito-idp.${Stack.of(this).region}.amazonaws.com/${this.userPool.userPoolId}`;

    const oauth = props.callbackUrls && props.callbackUrls.length > 0;
    const tokenValidity = TOKEN_VALIDITY_BY_ENVIRONMENT[environment] ?? Duration.hours(1);
    this.userPoolClient = this.userPool.addClient('WebClient', {
      userPoolClientName: `skafu-web-${environment}`,
      generateSecret: false,
      authFlows: { userSrp: true },
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
      accessTokenValidity: props.accessTokenValidity ?? tokenValidity,
      idTokenValidity: props.idTokenValidity ?? tokenValidity,
      refreshTokenValidity: props.refreshTokenValidity ?? Duration.days(30),
      ...(oauth
        ? {
          oAuth: {
            // Authorization code grant; a public client without secret must use PKCE, which Cognito enforces.
            flows: { authorizationCodeGrant: true, implicitCodeGrant: false },
            scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
            callbackUrls: props.callbackUrls,
            logoutUrls: props.logoutUrls ?? props.callbackUrls,
          },
        }
        : { disableOAuth: true }),
    });
    this.userPoolClientId = this.userPoolClient.userPoolClientId;

    for (const group of props.groups ?? DEFAULT_RBAC_GROUPS) this.addGroup(group);

    if (featurePlan !== cognito.FeaturePlan.PLUS) {
      acknowledgeNag(this.userPool, [
        {
          id: 'AwsSolutions-COG8',
          reason: 'The feature plan is the featurePlan prop: ESSENTIALS by default so that no paid plan is forced; set PLUS for threat protection.',
        },
      ]);
    }
  }

  /** Adds a group. Names are case-sensitive and unique; precedence decides which group's role wins. */
  public addGroup(group: RbacGroup): cognito.CfnUserPoolGroup {
    if (!/^[\p{L}\p{M}\p{S}\p{N}\p{P}]{1,128}$/u.test(group.name)) {
      throw new Error(`RbacUserPool ${this.node.path}: group name '${group.name}' must be 1-128 characters without spaces`);
    }
    if (this.groups[group.name]) {
      throw new Error(`RbacUserPool ${this.node.path}: group '${group.name}' already exists`);
    }
    if (!Number.isInteger(group.precedence) || group.precedence < 0) {
      throw new Error(`RbacUserPool ${this.node.path}: group '${group.name}' precedence must be an integer >= 0`);
    }
    const cfn = new cognito.CfnUserPoolGroup(this, `Group${group.name.replace(/[^A-Za-z0-9]/g, '')}`, {
      userPoolId: this.userPool.userPoolId,
      groupName: group.name,
      precedence: group.precedence,
      description: group.description,
    });
    this.groups[group.name] = cfn;
    return cfn;
  }

  /** The names of the pool's groups. */
  public get groupNames(): string[] {
    return Object.keys(this.groups);
  }
}

function validate(path: string, props: RbacUserPoolProps): void {
  const errors: string[] = [];
  const p = props.passwordPolicy;
  if (p?.minLength !== undefined && (p.minLength < 8 || p.minLength > 99)) {
    errors.push(`'passwordPolicy.minLength' must be 8-99, got ${p.minLength}`);
  }
  if (props.logoutUrls && !(props.callbackUrls && props.callbackUrls.length > 0)) {
    errors.push("'logoutUrls' needs 'callbackUrls' (OAuth is off without them)");
  }
  for (const url of props.callbackUrls ?? []) {
    if (!/^https:\/\//.test(url) && !/^http:\/\/localhost(:\d+)?(\/|$)/.test(url)) {
      errors.push(`callback URL '${url}' must use https (http only for localhost)`);
    }
  }
  const access = props.accessTokenValidity?.toMinutes();
  if (access !== undefined && (access < 5 || access > 1440)) errors.push("'accessTokenValidity' must be 5 minutes to 1 day");
  const idv = props.idTokenValidity?.toMinutes();
  if (idv !== undefined && (idv < 5 || idv > 1440)) errors.push("'idTokenValidity' must be 5 minutes to 1 day");
  const refresh = props.refreshTokenValidity?.toMinutes();
  if (refresh !== undefined && (refresh < 60 || refresh > 3650 * 24 * 60)) errors.push("'refreshTokenValidity' must be 1 hour to 10 years");
  if (refresh !== undefined && access !== undefined && refresh <= access) {
    errors.push("'refreshTokenValidity' must be longer than 'accessTokenValidity'");
  }
  const names = (props.groups ?? []).map((g) => g.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push(`group '${dup}' is declared twice in 'groups'`);
  if (props.groups && props.groups.length === 0) errors.push("'groups' is empty: routes need at least one group to allow");
  if (errors.length > 0) throw new Error(`RbacUserPool ${path}: ${errors.join('; ')}`);
}
