import { deflateRawSync, inflateRawSync } from 'node:zlib';

/** Which groups may call which route (`METHOD /api/v1/path/{param}`). */
export type RouteGroups = Record<string, string[]>;

/**
 * Encodes the route table for an environment variable: group names indexed, JSON, raw deflate, base64. Lambda
 * gives all environment variables 4 KB together, and a platform has hundreds of routes.
 */
export function encodeRouteGroups(routes: RouteGroups): string {
  const groups = [...new Set(Object.values(routes).flat())].sort();
  const index = new Map(groups.map((g, i) => [g, i]));
  const compact = Object.fromEntries(
    Object.keys(routes)
      .sort()
      .map((route) => [route, routes[route].map((g) => index.get(g)!).sort((a, b) => a - b)]),
  );
  return deflateRawSync(Buffer.from(JSON.stringify({ g: groups, r: compact }), 'utf8'), { level: 9 }).toString('base64');
}

export function decodeRouteGroups(encoded: string): RouteGroups {
  const { g, r } = JSON.parse(inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8')) as { g: string[]; r: Record<string, number[]> };
  return Object.fromEntries(Object.entries(r).map(([route, indexes]) => [route, indexes.map((i) => g[i])]));
}

export function routeKey(method: string, resourcePath: string): string {
  return `${method.toUpperCase()} ${resourcePath}`;
}
