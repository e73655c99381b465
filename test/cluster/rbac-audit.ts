/**
 * Checks recorded API requests against deploy/03-rbac.yaml the way the RBAC authorizer would:
 * verb from method and query, resource and subresource from the path, names from the path or
 * from `fieldSelector=metadata.name=` (list/watch). Used to prove the manifests grant exactly
 * what the appliance does.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import type { RecordedRequest } from "../support/fake-kube-api.js";

export interface Access {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface Grant {
  namespace?: string;
  rule: Rule;
}

export function grantsOf(file: string): Grant[] {
  const grants: Grant[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const o = doc.toJS() as { kind?: string; metadata?: { namespace?: string }; rules?: Rule[] } | null;
    if (o?.kind === "ClusterRole") for (const rule of o.rules ?? []) grants.push({ rule });
    if (o?.kind === "Role") for (const rule of o.rules ?? []) grants.push({ namespace: o.metadata?.namespace, rule });
  }
  return grants;
}

export function accessOf(request: RecordedRequest): Access | undefined {
  const url = new URL(request.path, "http://x");
  const segs = url.pathname.split("/").filter(Boolean);
  let group: string;
  let rest: string[];
  if (segs[0] === "api") {
    group = "";
    rest = segs.slice(2);
  } else if (segs[0] === "apis" && segs.length > 3) {
    group = segs[1]!;
    rest = segs.slice(3);
  } else return undefined; // discovery, /version: non-resource URLs every identity may read
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub] = rest as [string, string | undefined, string | undefined];
  const watch = url.searchParams.get("watch") === "true";
  const fieldName = /^metadata\.name=(.+)$/.exec(url.searchParams.get("fieldSelector") ?? "")?.[1];
  const verb =
    request.method === "GET"
      ? name === undefined
        ? watch
          ? "watch"
          : "list"
        : "get"
      : ({ POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" } as Record<string, string>)[
          request.method
        ]!;
  return { verb, group, resource: sub ? `${resource}/${sub}` : resource, namespace, name: name ?? fieldName };
}

export function allows(grant: Grant, a: Access): boolean {
  if (grant.namespace !== undefined && grant.namespace !== a.namespace) return false;
  const r = grant.rule;
  if (!r.apiGroups.includes(a.group) || !r.resources.includes(a.resource) || !r.verbs.includes(a.verb)) return false;
  if (r.resourceNames && (a.name === undefined || !r.resourceNames.includes(a.name))) return false;
  return true;
}
