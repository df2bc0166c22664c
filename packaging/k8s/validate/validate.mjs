// Validate Kubernetes manifests against the Kubernetes OpenAPI schemas, offline:
// kubernetes-models ships each API type's schema compiled into a validator
// (types, enums, required members, formats). It does not reject unknown
// members: the schemas leave additionalProperties open.
//
//   node validate.mjs FILE.yaml...     exit 0: every document valid
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const groupPath = (apiVersion) => {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
	return group ? `${group}/${version}` : version;
};

let failed = 0, checked = 0;
for (const file of process.argv.slice(2)) {
	const docs = parseAllDocuments(readFileSync(file, "utf8"));
	for (const doc of docs) {
		if (doc.errors.length) {
			console.log(`${file}: YAML error: ${doc.errors[0].message}`);
			failed++;
			continue;
		}
		const obj = doc.toJS();
		if (!obj)
			continue;
		const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
		let Model;
		try {
			const mod = await import(`kubernetes-models/${groupPath(obj.apiVersion)}/${obj.kind}`);
			Model = mod[obj.kind];
		} catch (e) {
			console.log(`${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
			failed++;
			continue;
		}
		try {
			new Model(obj).validate();
			console.log(`${where}: valid (${obj.apiVersion})`);
			checked++;
		} catch (e) {
			console.log(`${where}: INVALID: ${e.message.split("\n").slice(0, 6).join("; ")}`);
			failed++;
		}
	}
}
console.log(`${checked} valid, ${failed} invalid`);
process.exit(failed || !checked ? 1 : 0);
