// Runs in every test file before the framework: a fake, local-only AWS environment.
process.env.AWS_REGION = process.env.AWS_REGION ?? 'us-east-1';
process.env.AWS_ACCESS_KEY_ID = 'local';
process.env.AWS_SECRET_ACCESS_KEY = 'local';
delete process.env.AWS_PROFILE;
delete process.env.AWS_SESSION_TOKEN;
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
process.env.JSII_DEPRECATED = 'quiet';

// aws-local-stepfunctions 3 needs Promise.withResolvers (Node 22+); Skafu Local's polyfill serves the tests too.
import '../../local/src/polyfills';

// Powertools in tests: no EMF metrics on stdout, no log noise (tests assert behaviour, not log lines).
process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
process.env.POWERTOOLS_TRACE_ENABLED = 'false';
